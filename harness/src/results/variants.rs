//! The images an arm ran on, and `run.json`'s `variants` table: image × arm → verdict and
//! the arm's measures, for runs whose arms ran on several images (`faultline run --image
//! NAME=A,B`, `faultline bisect`). "Without the patch: fail, sizes lost; with it: pass."
//!
//! Architecture invariant: pure. The table is made from the arm records alone (so a merged
//! run and `faultline report` make the same one); a run with no variant arm has none.

use serde::{Deserialize, Serialize};

use super::ArmRecord;
use crate::case::Verdict;

/// The image a guest ran: its recipe's name and hash (the image cache's key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestImage {
    pub image: String,
    pub recipe: String,
}

/// What makes an arm record one variant of an arm: the case's arm and the images it ran on
/// (the listed images, joined by `+` when several names had lists).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArmVariant {
    pub arm: String,
    pub image: String,
}

/// `run.json`'s `variants`: rows are case::arm, columns images, one cell per variant arm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantTable {
    /// Column order: each image as it first appears among the arms.
    pub images: Vec<String>,
    /// Row order: each `case::arm` (the case's arm, without `@image`) as it first appears.
    pub arms: Vec<String>,
    pub cells: Vec<VariantCell>,
}

/// One arm on one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantCell {
    /// `case::arm`, a row of the table.
    pub arm: String,
    /// A column of the table.
    pub image: String,
    pub verdict: Verdict,
    pub expected: Verdict,
    pub met: bool,
    /// The case's measures as this run of the arm saw them.
    pub measures: Vec<CellMeasure>,
    /// The arm record's folder (`<case>/<arm>@<image>`).
    pub dir: String,
}

/// A measure in a cell: its name and value as the arm's record has them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellMeasure {
    pub name: String,
    pub value: Option<String>,
    pub unit: Option<String>,
}

impl VariantTable {
    /// The cell of `arm` (`case::arm`) on `image`, if that arm ran on it.
    pub fn cell(&self, arm: &str, image: &str) -> Option<&VariantCell> {
        self.cells.iter().find(|c| c.arm == arm && c.image == image)
    }
}

/// The table of the run's variant arms; `None` when no arm is a variant.
pub fn table(arms: &[ArmRecord]) -> Option<VariantTable> {
    let mut t = VariantTable {
        images: Vec::new(),
        arms: Vec::new(),
        cells: Vec::new(),
    };
    for a in arms {
        let Some(v) = &a.variant else { continue };
        let row = format!("{}::{}", a.case, v.arm);
        if !t.arms.contains(&row) {
            t.arms.push(row.clone());
        }
        if !t.images.contains(&v.image) {
            t.images.push(v.image.clone());
        }
        t.cells.push(VariantCell {
            arm: row,
            image: v.image.clone(),
            verdict: a.verdict,
            expected: a.expected,
            met: a.met,
            measures: a
                .measures
                .iter()
                .map(|m| CellMeasure {
                    name: m.name.clone(),
                    value: m.value.clone(),
                    unit: m.unit.clone(),
                })
                .collect(),
            dir: a.dir.clone(),
        });
    }
    (!t.cells.is_empty()).then_some(t)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::results::{MeasureRecord, RunRecord};

    /// The junit fixture's first arm run on two images (the bug fails on the 2008 build) and
    /// a second arm on one of them.
    pub(crate) fn variant_run() -> RunRecord {
        let base = crate::results::junit::tests::fixture();
        let arm = &base.arms[0];
        let on = |arm_name: &str, image: &str, verdict: Verdict, met: bool, vsize: Option<&str>| {
            let mut a = arm.clone();
            a.arm = format!("{arm_name}@{image}");
            a.dir = format!("{}/{arm_name}@{image}", a.case);
            a.verdict = verdict;
            a.met = met;
            a.variant = Some(ArmVariant {
                arm: arm_name.into(),
                image: image.into(),
            });
            a.measures = vec![MeasureRecord {
                name: "vsize_saved".into(),
                what: "W sizes in dovecot-uidlist after the disconnect".into(),
                value: vsize.map(str::to_string),
                number: vsize.and_then(|v| v.parse().ok()),
                unit: Some("msgs".into()),
                source: "step count_w".into(),
                problem: vsize.is_none().then(|| "the step failed".to_string()),
            }];
            a
        };
        let arms = vec![
            on("fin", "frontend-deb12u6", Verdict::Pass, true, Some("20")),
            on("fin", "frontend-2008", Verdict::Fail, false, Some("0")),
            on("rst", "frontend-2008", Verdict::Unknown, false, None),
        ];
        RunRecord {
            images: vec!["imap1=frontend-deb12u6,frontend-2008".into()],
            variants: table(&arms),
            arms,
            ..base
        }
    }

    #[test]
    fn a_run_without_variant_arms_has_no_table() {
        let base = crate::results::junit::tests::fixture();
        assert_eq!(table(&base.arms), None);
    }

    #[test]
    fn rows_are_arms_and_columns_images_in_the_order_they_ran() {
        let run = variant_run();
        let t = run.variants.as_ref().unwrap();
        assert_eq!(t.images, ["frontend-deb12u6", "frontend-2008"]);
        assert_eq!(t.arms.len(), 2);
        let row = &t.arms[0];
        assert_eq!(t.cell(row, "frontend-2008").unwrap().verdict, Verdict::Fail);
        assert!(t.cell(&t.arms[1], "frontend-deb12u6").is_none());
    }

    #[test]
    fn variants_table_json() {
        let run = variant_run();
        insta::assert_json_snapshot!(run.variants);
    }
}
