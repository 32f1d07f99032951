//! The open-files limit of the long-running services (controller, remote
//! gateway, tunnel service).
//!
//! Every connection is a descriptor. systemd starts services with a soft
//! limit of 1024 whatever the hard limit, and 2,000 laptops watching their
//! configs already need more; a program that serves many sockets is
//! expected to raise its soft limit to the hard one at start (the units
//! also set `LimitNOFILE`). The services then size their connection caps
//! below the limit they got, so that an exhausted limit never stops the
//! store or an admin.

/// Raises this process's soft open-files limit to its hard limit, and
/// returns the soft limit in force afterwards. A limit that cannot be
/// raised is kept (and returned).
pub fn raise_open_files_limit() -> u64 {
    #[cfg(unix)]
    {
        // rlimit: setrlimit(2) is unsafe to call, and the workspace
        // forbids unsafe code of its own.
        if let Ok((_, hard)) = rlimit::getrlimit(rlimit::Resource::NOFILE) {
            let _ = rlimit::increase_nofile_limit(hard);
        }
    }
    open_files_limit()
}

/// This process's soft open-files limit (on Windows, where handles have
/// no such limit, a large number).
pub fn open_files_limit() -> u64 {
    #[cfg(unix)]
    {
        rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
    }
    #[cfg(not(unix))]
    {
        1 << 20
    }
}
