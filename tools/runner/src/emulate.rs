//! Functions built for another architecture than this machine's (the template deploys arm64,
//! Graviton; this machine is x86_64) run under QEMU's user-mode emulator, so the package that
//! ships can be run and tested here as it is, not only its x86_64 twin.
//!
//! The binary's architecture is read from its object-file header (`object`); a binary for this
//! machine runs directly. A foreign one runs as `qemu-<arch>-static -L <sysroot> <binary>`:
//! Debian's `qemu-user-static` and the matching cross C library (`libc6-arm64-cross`, under
//! `/usr/aarch64-linux-gnu`) for the dynamic loader and glibc the package links against.
//! Emulation is for correctness, not timing: the cold starts and durations it reports are QEMU's.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use object::{Architecture, Object};

/// How to start a function's binary: directly, or through an emulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launcher {
    /// The program to execute.
    pub program: PathBuf,
    /// Its arguments, ending with the binary when the program is an emulator.
    pub args: Vec<OsString>,
    /// The binary's architecture when it is emulated (for logs), else `None`.
    pub emulated: Option<&'static str>,
}

/// The architecture name QEMU and Debian's cross packages use, for the ones Lambda offers.
fn arch_name(a: Architecture) -> Option<&'static str> {
    match a {
        Architecture::X86_64 => Some("x86_64"),
        Architecture::Aarch64 => Some("aarch64"),
        _ => None,
    }
}

/// The launcher for `binary` on this machine (`host`: `std::env::consts::ARCH`), looking for
/// the emulator in `path` (the `PATH` list) and its sysroot under `root` (`/` but in tests).
pub fn launcher(binary: &Path, host: &str, path: Option<OsString>, root: &Path) -> Result<Launcher, String> {
    let file = std::fs::File::open(binary).map_err(|e| format!("cannot open {}: {e}", binary.display()))?;
    // Reads the header only, not the whole (~40-120 MB) binary.
    let cache = object::ReadCache::new(file);
    let parsed = object::File::parse(&cache).map_err(|e| format!("{} is not an executable this runner understands: {e}", binary.display()))?;
    let arch = arch_name(parsed.architecture()).ok_or_else(|| format!("{} is built for {:?}: Lambda runs x86_64 and arm64 only", binary.display(), parsed.architecture()))?;
    if arch == host {
        return Ok(Launcher { program: binary.to_path_buf(), args: Vec::new(), emulated: None });
    }
    let names = [format!("qemu-{arch}-static"), format!("qemu-{arch}")];
    let emulator = path
        .iter()
        .flat_map(std::env::split_paths)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("{} is an {arch} binary and this machine is {host}: install QEMU's user-mode emulator to run it here (apt-get install qemu-user-static)", binary.display()))?;
    let sysroot = root.join(format!("usr/{arch}-linux-gnu"));
    let loader = match arch {
        "aarch64" => "lib/ld-linux-aarch64.so.1",
        _ => "lib64/ld-linux-x86-64.so.2",
    };
    if !sysroot.join(loader).is_file() {
        let package = if arch == "aarch64" { "libc6-arm64-cross" } else { "libc6-amd64-cross" };
        return Err(format!("{} is an {arch} binary linked against glibc, and {} has no {loader}: install the {arch} C library (apt-get install {package})", binary.display(), sysroot.display()));
    }
    Ok(Launcher { program: emulator, args: vec!["-L".into(), sysroot.into_os_string(), binary.as_os_str().to_os_string()], emulated: Some(arch) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn this_exe() -> PathBuf {
        std::env::current_exe().unwrap()
    }

    #[test]
    fn a_binary_for_this_machine_runs_directly() {
        let l = launcher(&this_exe(), std::env::consts::ARCH, std::env::var_os("PATH"), Path::new("/")).unwrap();
        assert_eq!(l, Launcher { program: this_exe(), args: vec![], emulated: None });
    }

    /// Pretending the host is the other architecture makes this test binary the foreign one.
    fn other_arch() -> &'static str {
        if std::env::consts::ARCH == "x86_64" { "aarch64" } else { "x86_64" }
    }

    #[test]
    fn a_foreign_binary_runs_under_the_emulator_with_its_sysroot() {
        let root = tempfile::tempdir().unwrap();
        let arch = std::env::consts::ARCH;
        let bin = root.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(bin.join(format!("qemu-{arch}-static")), b"").unwrap();
        let loader = if arch == "aarch64" { "lib/ld-linux-aarch64.so.1" } else { "lib64/ld-linux-x86-64.so.2" };
        let sysroot = root.path().join(format!("usr/{arch}-linux-gnu"));
        std::fs::create_dir_all(sysroot.join(loader).parent().unwrap()).unwrap();
        std::fs::write(sysroot.join(loader), b"").unwrap();

        let l = launcher(&this_exe(), other_arch(), Some(bin.clone().into_os_string()), root.path()).unwrap();
        assert_eq!(l.program, bin.join(format!("qemu-{arch}-static")));
        assert_eq!(l.args, vec![OsString::from("-L"), sysroot.into_os_string(), this_exe().into_os_string()]);
        assert_eq!(l.emulated, Some(arch));
    }

    #[test]
    fn a_missing_emulator_or_sysroot_says_what_to_install() {
        let root = tempfile::tempdir().unwrap();
        let err = launcher(&this_exe(), other_arch(), Some(root.path().as_os_str().to_os_string()), root.path()).unwrap_err();
        assert!(err.contains("qemu-user-static") && err.contains(std::env::consts::ARCH), "{err}");

        let arch = std::env::consts::ARCH;
        std::fs::write(root.path().join(format!("qemu-{arch}")), b"").unwrap();
        let err = launcher(&this_exe(), other_arch(), Some(root.path().as_os_str().to_os_string()), root.path()).unwrap_err();
        assert!(err.contains("-cross") && err.contains("glibc"), "{err}");
    }

    #[test]
    fn a_file_that_is_no_executable_is_named() {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), b"#!/bin/sh\necho hi\n").unwrap();
        let err = launcher(f.path(), "x86_64", None, Path::new("/")).unwrap_err();
        assert!(err.contains(&f.path().display().to_string()) && err.contains("not an executable"), "{err}");
    }
}
