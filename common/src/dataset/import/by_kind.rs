//! The import entry: DIR and `--out` checked, the kind chosen by DIR's files,
//! its importer run.

use crate::dataset::import::{ImportError, ImportOptions, ImportReport, io_at, resolve};
use crate::dataset::kind::DataKind;

/// Imports `opts.dir` into `opts.out` as the kind DIR's files say (see the
/// module docs).
pub fn import(opts: &ImportOptions) -> Result<ImportReport, ImportError> {
    if !opts.dir.is_dir() {
        return Err(ImportError::NotAFolder {
            dir: opts.dir.clone(),
        });
    }
    let dir = opts.dir.canonicalize().map_err(io_at(&opts.dir))?;
    let out = resolve(&opts.out)?;
    if out.starts_with(&dir) {
        return Err(ImportError::OutInsideSource { out, dir });
    }
    let (kind, src) = DataKind::importing(&dir);
    if let Some(other) = DataKind::detect(&out).filter(|&k| k != kind) {
        return Err(ImportError::OutHoldsOtherRoot {
            differing: vec![out.join(other.marker())],
            out,
        });
    }
    let report = kind.import(opts, &dir, &src, out)?;
    tracing::info!(kind = %kind, out = %report.out.display(), recordings = report.recordings.len(), "imported");
    Ok(report)
}
