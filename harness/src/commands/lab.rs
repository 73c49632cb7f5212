//! `faultline lab` (the three-guest lab from saved state, kept up for poking at by hand) and
//! `faultline bench` (start and switch figures): both need the filer and frontend images and a
//! work folder.

use std::path::PathBuf;
use std::time::Duration;

use super::Common;
use crate::command_error::CommandError;
use crate::console::Console;
use crate::exit::Exit;
use crate::images::{self, Image};
use crate::lab::{self, GuestSpec, Lab, LabSpec};
use crate::qemu::VmError;

/// What `faultline lab` and `faultline bench` were asked for.
#[derive(Debug, Clone)]
pub struct LabOptions {
    pub common: Common,
    /// Where the lab's files go (`None`: a new temporary folder).
    pub dir: Option<PathBuf>,
    /// `lab`: start from the whole-lab state with the front-ends' NFS mounts up.
    pub mounted: bool,
    /// `lab`: how long to keep the lab up before stopping it.
    pub seconds: u64,
}

/// The filer and frontend images (both built), the accelerator, and the work folder (`dir`
/// or a temporary one, removed when the guard drops).
struct Ready {
    filer: Image,
    frontend: Image,
    accel: crate::accel::Accel,
    dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

fn ready(o: &LabOptions, console: &dyn Console) -> Result<Ready, CommandError> {
    let recipes = images::load_recipes(&o.common.recipes, &["filer".into(), "frontend".into()])?;
    let found = recipes
        .iter()
        .map(|r| images::lookup(r, &o.common.cache))
        .collect::<Result<Vec<Image>, _>>()?;
    let (filer, frontend) = (found[0].clone(), found[1].clone());
    let decision = crate::suite::decide_accel(o.common.accel, Some(&filer), console);
    let (dir, tmp) = match &o.dir {
        Some(d) => (d.clone(), None),
        None => {
            let t = tempfile::Builder::new()
                .prefix("faultline-lab-")
                .tempdir()
                .map_err(|e| CommandError::Broken(format!("creating a work folder: {e}")))?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    Ok(Ready {
        filer,
        frontend,
        accel: decision.accel,
        dir,
        _tmp: tmp,
    })
}

/// `faultline bench`: the figures, side by side in one run.
pub fn bench(o: &LabOptions, console: &dyn Console) -> Result<Exit, CommandError> {
    let r = ready(o, console)?;
    let mut say = |l: &str| console.note(l);
    let report = crate::suite::runtime().block_on(crate::bench::run(
        &r.filer,
        &r.frontend,
        r.accel,
        &o.common.cache,
        &r.dir,
        &mut say,
    ))?;
    console.out(&report.render());
    Ok(Exit::Ok)
}

/// `faultline lab`: filer, imap1 and imap2 up until `seconds` pass or Ctrl-C.
pub fn lab(o: &LabOptions, console: &dyn Console) -> Result<Exit, CommandError> {
    let r = ready(o, console)?;
    let guest = |name: &str, image: &Image| GuestSpec {
        name: name.into(),
        image: image.clone(),
    };
    let spec = LabSpec {
        segment: "lan".into(),
        guests: vec![
            guest("filer", &r.filer),
            guest("imap1", &r.frontend),
            guest("imap2", &r.frontend),
        ],
        accel: r.accel,
        dir: r.dir.clone(),
        cache_root: o.common.cache.clone(),
    };
    crate::suite::runtime().block_on(async {
        let mut say = |l: &str| console.note(l);
        let lab = if o.mounted {
            let setup = lab::mounted(&["imap1", "imap2"]);
            Lab::start_prepared(spec, &setup, &mut say).await?
        } else {
            Lab::start(spec, &mut say).await?
        };
        console.note(&format!(
            "lab up in {}; pcapng {}; stopping in {} s (Ctrl-C stops now)",
            r.dir.display(),
            lab.pcap().display(),
            o.seconds
        ));
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(o.seconds)) => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        let stats = lab.stop().await;
        console.note(&format!("switch saw {} frames", stats.frames));
        Ok::<(), VmError>(())
    })?;
    Ok(Exit::Ok)
}
