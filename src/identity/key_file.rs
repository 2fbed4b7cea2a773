//! The key file: the peer's key pair kept in its state folder (`DOWNLOADS/.p2p/identity.key`),
//! made at first start and read on every start after.
//!
//! Format (72 bytes, PROTOCOL.md §15.2): the 7 ASCII bytes `p2p-key`, a
//! version byte (1), the X25519 private key (32 bytes), the public key (32 bytes). The public
//! key is redundant on purpose: it is recomputed from the private key on every read, so a
//! damaged private key is caught (any change that matters to X25519 changes the public key).
//!
//! Rules:
//! - The file is never replaced or repaired by us. A missing file is made (first start); a
//!   damaged, truncated or unknown one is an error naming the file and what to do. Making a new
//!   key silently would give the peer a new identity, which everyone that pinned the old one
//!   refuses, and would lose the old one for good.
//! - It is created with mode 0600, through `state_file` (temporary file, fsync, then a link
//!   that never overwrites: two peers starting at once on one folder end up with one key).
//! - A key file that others may read (group or other permission bits) is refused, like ssh
//!   refuses such a private key: the key may already be copied, and a warning scrolls by
//!   unread. The message gives the `chmod` that fixes it.

use super::Identity;
use crate::peer::state_file;
use std::fmt;
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub const MAGIC: &[u8; 7] = b"p2p-key";
pub const VERSION: u8 = 1;
pub const FILE_LEN: usize = MAGIC.len() + 1 + 32 + 32;

/// Why the key file cannot be used. `Display` names the file, what is wrong and what to do.
#[derive(Debug)]
pub struct KeyFileError {
    pub path: PathBuf,
    pub problem: Problem,
}

#[derive(Debug)]
pub enum Problem {
    /// It could not be opened, read or written.
    Io(io::Error),
    /// Not a regular file (a folder, a device).
    NotAFile,
    /// Group or others may read or write it (the mode bits).
    Exposed(u32),
    /// Shorter or longer than a key file.
    Length(u64),
    /// Does not start with [`MAGIC`].
    NotAKeyFile,
    /// A key file of another version.
    Version(u8),
    /// The public key does not match the private key.
    Damaged,
    /// No key pair could be made.
    Generate(String),
}

impl fmt::Display for KeyFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        let keep = "it holds this peer's identity: restore it from a backup, or move it away to \
                    start with a new identity (peers that know the old one will refuse the new one \
                    until told to trust it)";
        match &self.problem {
            Problem::Io(e) => write!(f, "key file {path}: {e}"),
            Problem::NotAFile => write!(f, "key file {path} is not a regular file; {keep}"),
            Problem::Exposed(mode) => write!(
                f,
                "key file {path} may be read by others (mode {:04o}); it holds this peer's \
                 private key: run `chmod 600 {path}` if nobody else could have copied it, \
                 otherwise move it away to start with a new identity",
                mode & 0o7777
            ),
            Problem::Length(n) => write!(
                f,
                "key file {path} is {n} bytes, not {FILE_LEN}: it is truncated or damaged; {keep}"
            ),
            Problem::NotAKeyFile => write!(f, "{path} is not a p2p key file; {keep}"),
            Problem::Version(v) => write!(
                f,
                "key file {path} has version {v}, this p2p reads version {VERSION}: run the p2p \
                 that wrote it, or {keep}"
            ),
            Problem::Damaged => write!(
                f,
                "key file {path} is damaged (its public key does not match its private key); {keep}"
            ),
            Problem::Generate(why) => write!(f, "key file {path}: {why}"),
        }
    }
}

impl std::error::Error for KeyFileError {}

/// The bytes of the key file of `identity`.
pub fn encode(identity: &Identity) -> [u8; FILE_LEN] {
    let mut out = [0; FILE_LEN];
    out[..7].copy_from_slice(MAGIC);
    out[7] = VERSION;
    out[8..40].copy_from_slice(identity.private_key());
    out[40..].copy_from_slice(identity.public_key());
    out
}

/// Refuses a file that is not a key file of our version, from its first 8 bytes (fewer if that
/// is all there is). A short file whose bytes so far are right passes: its length is the error.
fn check_header(bytes: &[u8]) -> Result<(), Problem> {
    let head = &bytes[..bytes.len().min(MAGIC.len())];
    if &MAGIC[..head.len()] != head {
        return Err(Problem::NotAKeyFile);
    }
    match bytes.get(MAGIC.len()) {
        Some(&v) if v != VERSION => Err(Problem::Version(v)),
        _ => Ok(()),
    }
}

/// The key pair in `bytes`, checked.
pub fn decode(bytes: &[u8]) -> Result<Identity, Problem> {
    check_header(bytes)?;
    if bytes.len() != FILE_LEN {
        return Err(Problem::Length(bytes.len() as u64));
    }
    let private: [u8; 32] = bytes[8..40].try_into().expect("the length was checked");
    let identity = Identity::from_private(private);
    if identity.public_key().as_slice() != &bytes[40..] {
        return Err(Problem::Damaged);
    }
    Ok(identity)
}

/// The key pair kept at `path`, made and written first if there is no file there yet. The
/// second value says whether it was made now.
pub fn load_or_create(path: &Path) -> Result<(Identity, bool), KeyFileError> {
    let error = |problem| KeyFileError {
        path: path.to_path_buf(),
        problem,
    };
    match load(path) {
        Err(Problem::Io(e)) if e.kind() == io::ErrorKind::NotFound => {}
        other => return other.map(|id| (id, false)).map_err(error),
    }
    let identity = Identity::generate().map_err(|why| error(Problem::Generate(why)))?;
    let bytes = encode(&identity);
    let written = state_file::create_with(path, |out| {
        out.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        out.write_all(&bytes)
    });
    match written {
        Ok(()) => Ok((identity, true)),
        // Another process on this folder made one first: that one is the identity.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            load(path).map(|id| (id, false)).map_err(error)
        }
        Err(e) => Err(error(Problem::Io(e))),
    }
}

/// Reads and checks the key file at `path`; its mode is checked on the open file, so the file
/// checked is the file read.
fn load(path: &Path) -> Result<Identity, Problem> {
    let file = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path);
    let file = match file {
        Ok(f) => f,
        // A symlink (O_NOFOLLOW): not something we made; refuse it rather than follow it.
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(Problem::NotAFile),
        Err(e) => return Err(Problem::Io(e)),
    };
    let meta = file.metadata().map_err(Problem::Io)?;
    if !meta.is_file() {
        return Err(Problem::NotAFile);
    }
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(Problem::Exposed(meta.permissions().mode()));
    }
    if meta.len() != FILE_LEN as u64 {
        // Read what is there anyway: a wrong magic or version says more than a wrong length.
        let mut head = Vec::new();
        file.take(8).read_to_end(&mut head).map_err(Problem::Io)?;
        check_header(&head)?;
        return Err(Problem::Length(meta.len()));
    }
    let mut bytes = Vec::with_capacity(FILE_LEN);
    file.take(FILE_LEN as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(Problem::Io)?;
    decode(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_mode(path: &Path, bytes: &[u8], mode: u32) {
        std::fs::write(path, bytes).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn first_start_makes_a_0600_file_and_restarts_read_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".p2p").join("identity.key");
        let (first, made) = load_or_create(&path).unwrap();
        assert!(made);
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.len(), FILE_LEN as u64);
        let (again, made) = load_or_create(&path).unwrap();
        assert!(!made);
        assert_eq!(again.peer_id(), first.peer_id());
        assert_eq!(again.private_key(), first.private_key());
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1, "a temporary file was left: {names:?}");
    }

    #[test]
    fn two_folders_give_two_ids() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (ia, _) = load_or_create(&a.path().join("identity.key")).unwrap();
        let (ib, _) = load_or_create(&b.path().join("identity.key")).unwrap();
        assert_ne!(ia.peer_id(), ib.peer_id());
    }

    /// Every way a key file can be wrong is an error naming the file, and the file is left
    /// exactly as it was.
    #[test]
    fn a_bad_key_file_is_refused_and_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity.key");
        let good = encode(&Identity::generate().unwrap());
        let mut newer = good;
        newer[7] = 2;
        let mut flipped = good;
        flipped[20] ^= 0x10;
        let mut flipped_public = good;
        flipped_public[71] ^= 1;
        type Case = (&'static str, Vec<u8>, fn(&Problem) -> bool);
        let cases: Vec<Case> = vec![
            ("empty", vec![], |p| matches!(p, Problem::Length(0))),
            ("cut in the magic", b"p2p-".to_vec(), |p| {
                matches!(p, Problem::Length(4))
            }),
            ("truncated", good[..40].to_vec(), |p| {
                matches!(p, Problem::Length(40))
            }),
            ("one byte short", good[..71].to_vec(), |p| {
                matches!(p, Problem::Length(71))
            }),
            ("one byte long", [&good[..], b"\n"].concat(), |p| {
                matches!(p, Problem::Length(73))
            }),
            ("other file", b"# not a key\n".to_vec(), |p| {
                matches!(p, Problem::NotAKeyFile)
            }),
            ("newer version", newer.to_vec(), |p| {
                matches!(p, Problem::Version(2))
            }),
            ("newer and longer", [&newer[..], b"more"].concat(), |p| {
                matches!(p, Problem::Version(2))
            }),
            ("private key flipped", flipped.to_vec(), |p| {
                matches!(p, Problem::Damaged)
            }),
            ("public key flipped", flipped_public.to_vec(), |p| {
                matches!(p, Problem::Damaged)
            }),
        ];
        for (what, bytes, expected) in cases {
            write_mode(&path, &bytes, 0o600);
            let err = load_or_create(&path).unwrap_err();
            assert!(expected(&err.problem), "{what}: {err}");
            let text = err.to_string();
            assert!(text.contains(&*path.to_string_lossy()), "{what}: {text}");
            assert_eq!(
                std::fs::read(&path).unwrap(),
                bytes,
                "{what}: the file was changed"
            );
        }
    }

    #[test]
    fn a_key_file_others_can_read_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity.key");
        let good = encode(&Identity::generate().unwrap());
        for mode in [0o644, 0o640, 0o604, 0o660, 0o602] {
            write_mode(&path, &good, mode);
            let err = load_or_create(&path).unwrap_err();
            assert!(
                matches!(err.problem, Problem::Exposed(_)),
                "{mode:o}: {err}"
            );
            assert!(err.to_string().contains("chmod 600"), "{err}");
        }
        write_mode(&path, &good, 0o400);
        assert!(
            load_or_create(&path).is_ok(),
            "a read-only 0400 file is fine"
        );
    }

    #[test]
    fn a_folder_or_symlink_in_its_place_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity.key");
        std::fs::create_dir(&path).unwrap();
        assert!(matches!(
            load_or_create(&path).unwrap_err().problem,
            Problem::NotAFile
        ));
        std::fs::remove_dir(&path).unwrap();
        let target = dir.path().join("elsewhere");
        write_mode(&target, &encode(&Identity::generate().unwrap()), 0o600);
        std::os::unix::fs::symlink(&target, &path).unwrap();
        assert!(matches!(
            load_or_create(&path).unwrap_err().problem,
            Problem::NotAFile
        ));
    }

    /// Two processes starting at once on one folder: both end with the same identity, the
    /// one on disk.
    #[test]
    fn racing_first_starts_agree_on_one_key() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("identity.key");
            let ids: Vec<_> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..4)
                    .map(|_| s.spawn(|| load_or_create(&path).unwrap().0.peer_id()))
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let on_disk = load_or_create(&path).unwrap().0.peer_id();
            assert!(
                ids.iter().all(|id| *id == on_disk),
                "{ids:?} vs {on_disk:?}"
            );
        }
    }
}
