//! Windows: the Administrators group, security descriptors, named pipes,
//! the registry.
//!
//! This is the one module of the client that calls the Windows API
//! directly (`unsafe`): converting SDDL to security descriptors, applying
//! one to a directory, reading the process token's elevation, a process's
//! exit code and the two clocks. Each call is wrapped in a small safe
//! function, and each `unsafe` block says why it is sound. Everything else
//! goes through std, tokio, winreg and windows-service.
#![allow(unsafe_code)]

use std::ffi::{OsStr, c_void};
use std::os::windows::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use windows_sys::Win32::Foundation::{CloseHandle, HANDLE, LocalFree};
use windows_sys::Win32::Security::Authorization::{
    ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1,
};
use windows_sys::Win32::Security::{
    DACL_SECURITY_INFORMATION, GetTokenInformation, PROTECTED_DACL_SECURITY_INFORMATION,
    SECURITY_ATTRIBUTES, SetFileSecurityW, TOKEN_ELEVATION, TOKEN_QUERY, TokenElevation,
};
use windows_sys::Win32::System::SystemInformation::GetTickCount64;
use windows_sys::Win32::System::Threading::{
    GetCurrentProcess, GetExitCodeProcess, OpenProcess, OpenProcessToken,
    PROCESS_QUERY_LIMITED_INFORMATION,
};
use windows_sys::Win32::System::WindowsProgramming::QueryUnbiasedInterruptTime;

/// Where `porta daemon` listens unless told otherwise: a named pipe.
pub const DEFAULT_SOCKET: &str = r"\\.\pipe\porta";

/// The byte stream of the local API.
pub type LocalStream = tokio::net::windows::named_pipe::NamedPipeClient;

/// Who may open the state directory: SYSTEM and Administrators, full
/// control, inherited by the files in it; nothing inherited from above
/// (`P`), so a world-readable ProgramData does not leak the key.
pub const STATE_DIR_SDDL: &str = "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)";

/// A file of the key's: the same, without inheritance flags.
pub const PRIVATE_FILE_SDDL: &str = "D:P(A;;FA;;;SY)(A;;FA;;;BA)";

/// Who may use the local API's pipe: SYSTEM and Administrators fully,
/// interactive users (someone logged in at this computer, not a network
/// or service logon) to read and write — that is, to call the API.
pub const PIPE_SDDL: &str = "D:P(A;;GA;;;SY)(A;;GA;;;BA)(A;;GRGW;;;IU)";

/// Whether this process runs elevated (an administrator's full token, or
/// LocalSystem).
pub fn is_administrator() -> bool {
    // SAFETY: GetCurrentProcess returns a pseudo-handle that needs no
    // closing and stays valid.
    token_elevated(unsafe { GetCurrentProcess() })
}

/// Whether the process `pid` runs elevated (false when it cannot be
/// opened: it is gone, or protected).
pub fn process_is_elevated(pid: u32) -> bool {
    // SAFETY: OpenProcess has no pointer arguments; a null handle is
    // checked before use.
    let process = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) };
    if process.is_null() {
        return false;
    }
    let elevated = token_elevated(process);
    // SAFETY: opened above, not used after.
    unsafe { CloseHandle(process) };
    elevated
}

/// The process id of the client connected to the pipe instance `pipe`.
pub fn pipe_client_pid(pipe: std::os::windows::io::RawHandle) -> Option<u32> {
    use windows_sys::Win32::System::Pipes::GetNamedPipeClientProcessId;
    let mut pid = 0u32;
    // SAFETY: `pipe` is the server end of a connected pipe instance the
    // caller holds open for the duration of the call; `pid` is a valid
    // out pointer.
    let ok = unsafe { GetNamedPipeClientProcessId(pipe.cast(), &mut pid) };
    (ok != 0).then_some(pid)
}

/// Whether the token of `process` (a handle with query access) is elevated.
fn token_elevated(process: HANDLE) -> bool {
    let mut token: HANDLE = std::ptr::null_mut();
    // SAFETY: `process` is a valid process handle; `token` is a valid out
    // pointer.
    if unsafe { OpenProcessToken(process, TOKEN_QUERY, &mut token) } == 0 {
        return false;
    }
    let mut elevation = TOKEN_ELEVATION { TokenIsElevated: 0 };
    let mut length = 0u32;
    // SAFETY: the buffer is a TOKEN_ELEVATION and its size is passed; the
    // token handle is ours and closed right after.
    let ok = unsafe {
        GetTokenInformation(
            token,
            TokenElevation,
            (&raw mut elevation).cast::<c_void>(),
            size_of::<TOKEN_ELEVATION>() as u32,
            &mut length,
        )
    };
    // SAFETY: `token` was opened above and is not used after.
    unsafe { CloseHandle(token) };
    ok != 0 && elevation.TokenIsElevated != 0
}

/// The name of the user running this program.
pub fn user_name() -> String {
    std::env::var("USERNAME").unwrap_or_else(|_| "this user".into())
}

/// The state directory of the service: `Porta` in the ProgramData known
/// folder (`C:\ProgramData\Porta`). Asked of the shell rather than read
/// from `%ProgramData%`, which a service's environment need not carry
/// (under Wine it names another folder), so the service and an
/// administrator's `porta` agree.
pub fn service_state_dir() -> PathBuf {
    program_data()
        .or_else(|| std::env::var_os("ProgramData").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(r"C:\ProgramData"))
        .join("Porta")
}

fn program_data() -> Option<PathBuf> {
    use std::os::windows::ffi::OsStringExt;
    use windows_sys::Win32::System::Com::CoTaskMemFree;
    use windows_sys::Win32::UI::Shell::{FOLDERID_ProgramData, SHGetKnownFolderPath};
    let mut path: *mut u16 = std::ptr::null_mut();
    // SAFETY: a valid folder id and out pointer; no token (this process's).
    let result =
        unsafe { SHGetKnownFolderPath(&FOLDERID_ProgramData, 0, std::ptr::null_mut(), &mut path) };
    let found = (result == 0 && !path.is_null()).then(|| {
        // SAFETY: on success `path` is a NUL-terminated UTF-16 string.
        let length = (0..).take_while(|&i| unsafe { *path.add(i) } != 0).count();
        // SAFETY: `length` units were just read from it.
        let units = unsafe { std::slice::from_raw_parts(path, length) };
        PathBuf::from(std::ffi::OsString::from_wide(units))
    });
    // SAFETY: allocated by SHGetKnownFolderPath (even on failure), freed once.
    unsafe { CoTaskMemFree(path.cast::<c_void>()) };
    found
}

/// Gives `dir` (and what is created in it) to SYSTEM and Administrators
/// only: [`STATE_DIR_SDDL`].
pub fn restrict_to_administrators(dir: &Path) -> std::io::Result<()> {
    apply_descriptor(dir, STATE_DIR_SDDL)
}

/// Replaces the DACL of `path` by the one in `sddl`, inheriting nothing.
fn apply_descriptor(path: &Path, sddl: &str) -> std::io::Result<()> {
    let descriptor = SecurityDescriptor::from_sddl(sddl)?;
    let path = wide(path.as_os_str());
    // SAFETY: `path` is NUL-terminated UTF-16 and outlives the call; the
    // descriptor is a valid self-relative descriptor held by `descriptor`.
    let ok = unsafe {
        SetFileSecurityW(
            path.as_ptr(),
            DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
            descriptor.0,
        )
    };
    if ok == 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Who can read a file [`write_private_file`] wrote.
pub const PRIVATE_FILE_READERS: &str = "SYSTEM and Administrators";

/// Writes `bytes` to `path` readable by SYSTEM and Administrators only,
/// whether the file is new or not.
pub fn write_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::File::create(path)?;
    apply_descriptor(path, PRIVATE_FILE_SDDL)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Opens the local API's pipe at `path`, waiting briefly while all its
/// instances are busy.
pub async fn connect_local(path: &Path) -> std::io::Result<LocalStream> {
    const ERROR_PIPE_BUSY: i32 = 231;
    let mut tries = 0;
    loop {
        match tokio::net::windows::named_pipe::ClientOptions::new().open(path) {
            Err(e) if e.raw_os_error() == Some(ERROR_PIPE_BUSY) && tries < 50 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => return other,
        }
    }
}

/// Whether the process `pid` still runs.
pub fn process_alive(pid: u32) -> bool {
    const STILL_ACTIVE: u32 = 259;
    // SAFETY: OpenProcess has no pointer arguments; a null handle is
    // checked before use.
    let process = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) };
    if process.is_null() {
        return false;
    }
    let mut code = 0u32;
    // SAFETY: `process` is a valid handle we opened; `code` a valid out
    // pointer. The handle is closed right after.
    let ok = unsafe { GetExitCodeProcess(process, &mut code) };
    // SAFETY: opened above, not used after.
    unsafe { CloseHandle(process) };
    ok != 0 && code == STILL_ACTIVE
}

/// Time since boot counting a suspend (the tick count), and without it
/// (the unbiased interrupt time): their gap grows by how long the
/// computer slept.
pub fn clocks() -> (Duration, Duration) {
    // SAFETY: no arguments.
    let with_sleep = Duration::from_millis(unsafe { GetTickCount64() });
    let mut hundreds_of_ns = 0u64;
    // SAFETY: a valid out pointer.
    unsafe { QueryUnbiasedInterruptTime(&mut hundreds_of_ns) };
    (with_sleep, Duration::from_nanos(hundreds_of_ns * 100))
}

/// This computer's name, as the controller lists it.
pub fn hostname() -> String {
    std::env::var("COMPUTERNAME").unwrap_or_default()
}

/// The Windows edition and version, from the registry ("Windows 10 Pro
/// 22H2").
pub fn os_name() -> String {
    let key = winreg::RegKey::predef(winreg::enums::HKEY_LOCAL_MACHINE)
        .open_subkey(r"SOFTWARE\Microsoft\Windows NT\CurrentVersion");
    let Ok(key) = key else {
        return "Windows".into();
    };
    let product: String = key
        .get_value("ProductName")
        .unwrap_or_else(|_| "Windows".into());
    match key.get_value::<String, _>("DisplayVersion") {
        Ok(version) => format!("{product} {version}"),
        Err(_) => product,
    }
}

/// Nothing to do: the service reports its state to the service control
/// manager itself (see `daemon::windows`).
pub fn notify_ready(_what: &str) {}

/// A security descriptor made from SDDL, freed when dropped.
pub struct SecurityDescriptor(*mut c_void);

// SAFETY: the descriptor is an immutable block of memory owned by this
// value; Windows only reads it.
unsafe impl Send for SecurityDescriptor {}
// SAFETY: as above: shared reads only.
unsafe impl Sync for SecurityDescriptor {}

impl SecurityDescriptor {
    /// Parses `sddl` (Security Descriptor Definition Language).
    pub fn from_sddl(sddl: &str) -> std::io::Result<Self> {
        let text = wide(OsStr::new(sddl));
        let mut descriptor: *mut c_void = std::ptr::null_mut();
        // SAFETY: `text` is NUL-terminated UTF-16; the out pointer is
        // valid; the size out-parameter is optional (null).
        let ok = unsafe {
            ConvertStringSecurityDescriptorToSecurityDescriptorW(
                text.as_ptr(),
                SDDL_REVISION_1,
                &mut descriptor,
                std::ptr::null_mut(),
            )
        };
        if ok == 0 || descriptor.is_null() {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Self(descriptor))
    }

    /// Security attributes naming this descriptor, for creating an object
    /// (they borrow it: keep `self` alive while they are used).
    pub fn attributes(&self) -> SECURITY_ATTRIBUTES {
        SECURITY_ATTRIBUTES {
            nLength: size_of::<SECURITY_ATTRIBUTES>() as u32,
            lpSecurityDescriptor: self.0,
            bInheritHandle: 0,
        }
    }
}

impl Drop for SecurityDescriptor {
    fn drop(&mut self) {
        // SAFETY: allocated by ConvertStringSecurityDescriptorToSecurity-
        // DescriptorW with LocalAlloc, freed once, here.
        unsafe { LocalFree(self.0) };
    }
}

fn wide(text: &OsStr) -> Vec<u16> {
    text.encode_wide().chain(std::iter::once(0)).collect()
}

/// Creates one instance of the named pipe at `path` with `descriptor`,
/// local clients only; `first` fails if the pipe exists already.
pub fn create_pipe_instance(
    path: &Path,
    descriptor: &SecurityDescriptor,
    first: bool,
) -> std::io::Result<tokio::net::windows::named_pipe::NamedPipeServer> {
    let mut attributes = descriptor.attributes();
    // SAFETY: `attributes` and the descriptor it points at are alive for
    // the whole call, which copies the security into the new pipe.
    unsafe {
        tokio::net::windows::named_pipe::ServerOptions::new()
            .first_pipe_instance(first)
            .reject_remote_clients(true)
            .create_with_security_attributes_raw(path, (&raw mut attributes).cast::<c_void>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_descriptors_parse_and_a_wrong_one_is_refused() {
        for sddl in [PIPE_SDDL, STATE_DIR_SDDL, PRIVATE_FILE_SDDL] {
            SecurityDescriptor::from_sddl(sddl).expect(sddl);
        }
        assert!(SecurityDescriptor::from_sddl("D:(A;;XX;;;ZZ)").is_err());
    }

    #[test]
    fn the_state_directory_and_a_private_file_take_their_descriptors() {
        let dir = tempfile::tempdir().expect("temp dir");
        restrict_to_administrators(dir.path()).expect("directory");
        let file = dir.path().join("town.conf");
        write_private_file(&file, b"[Interface]\n").expect("file");
        assert_eq!(std::fs::read(&file).expect("read back"), b"[Interface]\n");
        assert!(restrict_to_administrators(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn this_process_is_alive_and_an_ended_one_is_not() {
        assert!(process_alive(std::process::id()));
        let mut child = std::process::Command::new("cmd")
            .args(["/c", "exit 0"])
            .spawn()
            .expect("cmd");
        let pid = child.id();
        child.wait().expect("wait");
        assert!(!process_alive(pid));
    }

    #[test]
    fn the_clock_that_counts_sleep_is_never_behind() {
        let (with_sleep, without) = clocks();
        assert!(with_sleep > Duration::ZERO);
        // The tick count has millisecond steps: allow one.
        assert!(with_sleep + Duration::from_millis(1) >= without);
    }
}
