//! Where an output file goes. A regular file (or a new one) is replaced
//! whole: a temp file beside it, then a rename, so a reader never sees half
//! a summary. Anything else (a FIFO, a device, `/proc/self/fd/N`) is written
//! through, as `>` would: replacing it would destroy it and deliver nothing.
//! `-`, or a path that is this process's stdout (`/dev/stdout`), is stdout.

use std::fs::{File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::io::AsFd;
use std::path::{Path, PathBuf};

#[derive(Debug, PartialEq)]
pub enum Dest {
    Stdout,
    /// Write a temp file beside this regular file, then rename it over.
    Replace(PathBuf),
    /// Open and write: FIFOs, devices, the target of a dangling symlink.
    Through(PathBuf),
}

impl Dest {
    pub fn of(path: &Path) -> Dest {
        if path == Path::new("-") || is_stdout(path) {
            return Dest::Stdout;
        }
        match std::fs::metadata(path) {
            // A symlink to a regular file stays a link: its target is
            // replaced, which keeps the whole-or-nothing promise.
            Ok(m) if m.is_file() => {
                Dest::Replace(std::fs::canonicalize(path).unwrap_or_else(|_| path.into()))
            }
            Ok(_) => Dest::Through(path.into()),
            // A dangling symlink: create what it points to.
            Err(_) if path.symlink_metadata().is_ok() => Dest::Through(path.into()),
            Err(_) => Dest::Replace(path.into()),
        }
    }
}

/// Whether `path` is the file this process's stdout is open on.
fn is_stdout(path: &Path) -> bool {
    let Ok(target) = std::fs::metadata(path) else {
        return false;
    };
    let Ok(fd) = io::stdout().as_fd().try_clone_to_owned() else {
        return false;
    };
    File::from(fd)
        .metadata()
        .is_ok_and(|out| (out.dev(), out.ino()) == (target.dev(), target.ino()))
}

/// Write `bytes` as the whole content of `path`, the way [`Dest`] says.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    match Dest::of(path) {
        Dest::Stdout => {
            let mut out = io::stdout().lock();
            out.write_all(bytes)?;
            out.flush()
        }
        Dest::Through(p) => open(&p)?.write_all(bytes),
        Dest::Replace(p) => replace(&p, bytes),
    }
}

/// A stream to `path` (`--out json=FILE`): stdout, or the file created or
/// truncated in place (through a symlink, into a FIFO or a device).
pub fn stream(path: &Path) -> io::Result<Box<dyn Write + Send>> {
    Ok(match Dest::of(path) {
        Dest::Stdout => Box::new(io::stdout()),
        Dest::Through(p) | Dest::Replace(p) => Box::new(open(&p)?),
    })
}

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
}

/// Temp file, fsync (a full disk may only say so then), rename. The temp
/// file is removed on every failure: it is dropped unpersisted.
fn replace(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        // As File::create makes it (the umask applies), not tempfile's 0600.
        .permissions(Permissions::from_mode(0o666))
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_failed_replace_leaves_no_temp_file() {
        let d = tempfile::tempdir().unwrap();
        // The rename fails: a folder that is not empty is in the way.
        let busy = d.path().join("busy");
        std::fs::create_dir(&busy).unwrap();
        std::fs::write(busy.join("x"), "x").unwrap();
        assert!(replace(&busy, b"data").is_err());
        assert_eq!(names(d.path()), ["busy"]);
        replace(&d.path().join("ok"), b"data").unwrap();
        assert_eq!(names(d.path()), ["busy", "ok"]);
    }

    #[test]
    fn kinds_of_destination() {
        let d = tempfile::tempdir().unwrap();
        let p = |n: &str| d.path().join(n);
        assert_eq!(Dest::of(Path::new("-")), Dest::Stdout);
        assert_eq!(Dest::of(&p("new")), Dest::Replace(p("new")));
        std::fs::write(p("file"), "x").unwrap();
        std::os::unix::fs::symlink(p("file"), p("link")).unwrap();
        let file = std::fs::canonicalize(p("file")).unwrap();
        assert_eq!(Dest::of(&p("link")), Dest::Replace(file));
        std::os::unix::fs::symlink(p("nowhere"), p("dangling")).unwrap();
        assert_eq!(Dest::of(&p("dangling")), Dest::Through(p("dangling")));
        assert_eq!(
            Dest::of(Path::new("/dev/full")),
            Dest::Through("/dev/full".into())
        );
    }
}
