//! Extraction limits from the container the service runs in: its cgroup's CPU quota and memory limit
//! (cgroup v2 `cpu.max` / `memory.max`, or v1 `cpu.cfs_quota_us` / `memory.limit_in_bytes`), so that a pod
//! with 1 CPU and 1 GiB runs one parse at a time under a worker limit that fits in its memory, instead of one
//! parse per host core, each allowed 2 GiB.

use std::path::{Path, PathBuf};

/// What the cgroup allows, when it says.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CgroupLimits {
    /// CPUs (quota / period).
    pub cpus: Option<f64>,
    /// Bytes of memory.
    pub memory_bytes: Option<u64>,
}

/// Memory the service keeps for itself (the document's bytes, its chunks, the runtime), never given to
/// workers.
pub const PARENT_RESERVE_MIB: u64 = 256;

/// The smallest worker limit (a parser needs some room; below it every document would fail).
pub const MIN_WORKER_MIB: u64 = 64;

impl CgroupLimits {
    /// The limits of this process's cgroup, read under `/sys/fs/cgroup`.
    pub fn of_this_process() -> CgroupLimits {
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        CgroupLimits::read(Path::new("/sys/fs/cgroup"), &own)
    }

    /// The limits under a cgroup file system mounted at `root`, for a process whose `/proc/self/cgroup` is
    /// `own` (the folder of its own cgroup first, then the root of the mount: inside a container's cgroup
    /// namespace, that is the container's).
    pub fn read(root: &Path, own: &str) -> CgroupLimits {
        let v2_path = own.lines().find_map(|l| l.strip_prefix("0::")).unwrap_or("/");
        let v1_path = |controller: &str| {
            own.lines().find_map(|l| {
                let mut parts = l.splitn(3, ':');
                let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
                controllers.split(',').any(|c| c == controller).then_some(path)
            })
        };
        let candidates = |base: PathBuf, rel: &str| -> Vec<PathBuf> {
            let rel = rel.trim_start_matches('/');
            let mut c = Vec::new();
            if !rel.is_empty() {
                c.push(base.join(rel));
            }
            c.push(base);
            c
        };
        let read = |dirs: &[PathBuf], file: &str| dirs.iter().find_map(|d| std::fs::read_to_string(d.join(file)).ok());

        // cgroup v2.
        let v2 = candidates(root.to_path_buf(), v2_path);
        let mut limits = CgroupLimits::default();
        if let Some(cpu) = read(&v2, "cpu.max") {
            let mut parts = cpu.split_whitespace();
            if let (Some(q), Some(p)) = (parts.next(), parts.next())
                && let (Ok(q), Ok(p)) = (q.parse::<f64>(), p.parse::<f64>())
                && q > 0.0
                && p > 0.0
            {
                limits.cpus = Some(q / p);
            }
        }
        if let Some(mem) = read(&v2, "memory.max") {
            limits.memory_bytes = mem.trim().parse::<u64>().ok();
        }
        // cgroup v1.
        if limits.cpus.is_none() {
            let dirs = candidates(root.join("cpu"), v1_path("cpu").unwrap_or("/"));
            let quota = read(&dirs, "cpu.cfs_quota_us").and_then(|q| q.trim().parse::<f64>().ok());
            let period = read(&dirs, "cpu.cfs_period_us").and_then(|p| p.trim().parse::<f64>().ok());
            if let (Some(q), Some(p)) = (quota, period)
                && q > 0.0
                && p > 0.0
            {
                limits.cpus = Some(q / p);
            }
        }
        if limits.memory_bytes.is_none() {
            let dirs = candidates(root.join("memory"), v1_path("memory").unwrap_or("/"));
            // v1 says "no limit" with a huge number (a page-rounded i64::MAX).
            limits.memory_bytes = read(&dirs, "memory.limit_in_bytes")
                .and_then(|m| m.trim().parse::<u64>().ok())
                .filter(|m| *m < (1u64 << 60));
        }
        limits
    }
}

/// How many documents extract parses at once and how much memory each worker may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub concurrency: usize,
    pub worker_memory_mib: u64,
}

impl Limits {
    /// Parses at once: the host's cores, at most the cgroup's CPUs (rounded up), at least 1. Worker memory:
    /// the configured limit, at most an equal share of the cgroup's memory after [`PARENT_RESERVE_MIB`]
    /// (and at least [`MIN_WORKER_MIB`]).
    pub fn derive(configured_worker_mib: u64, cgroup: &CgroupLimits, host_cores: usize) -> Limits {
        let mut concurrency = host_cores.max(1);
        if let Some(cpus) = cgroup.cpus {
            concurrency = concurrency.min(cpus.ceil().max(1.0) as usize);
        }
        let mut worker = configured_worker_mib;
        if let Some(bytes) = cgroup.memory_bytes {
            let total_mib = bytes / (1024 * 1024);
            let share = total_mib.saturating_sub(PARENT_RESERVE_MIB) / concurrency as u64;
            worker = worker.min(share).max(MIN_WORKER_MIB);
            // With too little memory for even one worker each, parse fewer at once.
            while concurrency > 1 && (worker * concurrency as u64 + PARENT_RESERVE_MIB) > total_mib {
                concurrency -= 1;
            }
        }
        Limits { concurrency, worker_memory_mib: worker }
    }

    /// For this process, from its cgroup and the host's cores.
    pub fn of_this_process(configured_worker_mib: u64) -> Limits {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Limits::derive(configured_worker_mib, &CgroupLimits::of_this_process(), cores)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, file: &str, text: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(file), text).unwrap();
    }

    /// Issue 14, defect 9: extract ran one parse per host core, each worker allowed 2 GiB, inside a 1 GiB pod.
    #[test]
    fn a_one_cpu_one_gib_pod_parses_one_document_at_a_time_within_its_memory() {
        let root = tempfile::tempdir().unwrap();
        write(root.path(), "cpu.max", "100000 100000\n");
        write(root.path(), "memory.max", "1073741824\n");
        let cg = CgroupLimits::read(root.path(), "0::/\n");
        assert_eq!(cg, CgroupLimits { cpus: Some(1.0), memory_bytes: Some(1 << 30) });
        let l = Limits::derive(2048, &cg, 8);
        assert_eq!(l.concurrency, 1);
        assert!(l.worker_memory_mib * l.concurrency as u64 + PARENT_RESERVE_MIB <= 1024, "{l:?}");
        // Two CPUs and 4 GiB: two parses, each under the configured 2 GiB and its share.
        write(root.path(), "cpu.max", "200000 100000\n");
        write(root.path(), "memory.max", "4294967296\n");
        let l = Limits::derive(2048, &CgroupLimits::read(root.path(), "0::/\n"), 8);
        assert_eq!(l, Limits { concurrency: 2, worker_memory_mib: (4096 - PARENT_RESERVE_MIB) / 2 });
    }

    #[test]
    fn no_limits_keep_the_host_and_the_configuration() {
        let root = tempfile::tempdir().unwrap();
        write(root.path(), "cpu.max", "max 100000\n");
        write(root.path(), "memory.max", "max\n");
        let cg = CgroupLimits::read(root.path(), "0::/\n");
        assert_eq!(cg, CgroupLimits::default());
        assert_eq!(Limits::derive(2048, &cg, 4), Limits { concurrency: 4, worker_memory_mib: 2048 });
    }

    #[test]
    fn cgroup_v1_and_a_nested_own_cgroup() {
        let root = tempfile::tempdir().unwrap();
        write(&root.path().join("cpu/kubepods/pod1"), "cpu.cfs_quota_us", "150000\n");
        write(&root.path().join("cpu/kubepods/pod1"), "cpu.cfs_period_us", "100000\n");
        write(&root.path().join("memory"), "memory.limit_in_bytes", "9223372036854771712\n");
        let own = "4:memory:/somewhere/else\n1:cpu,cpuacct:/kubepods/pod1\n0::/\n";
        let cg = CgroupLimits::read(root.path(), own);
        assert_eq!(cg.cpus, Some(1.5));
        assert_eq!(cg.memory_bytes, None, "v1's huge number means no limit");
        assert_eq!(Limits::derive(2048, &cg, 8).concurrency, 2);
    }
}
