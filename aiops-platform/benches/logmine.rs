//! Throughput of the log template miner (lines/s) on a mix of log formats, plain `main` timing.
//!
//! `cargo bench -p aiops-platform --bench logmine`

use std::hint::black_box;
use std::time::Instant;

use aiops_platform::logmine::Miner;

fn mix(n: usize) -> Vec<String> {
    let users = [
        "root", "admin", "guest", "oracle", "test", "ubuntu", "postgres", "git",
    ];
    let mut lines = Vec::with_capacity(n);
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..n {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let r = s as usize;
        let u = users[r % users.len()];
        let line = match i % 12 {
            0 => format!(
                "081109 {:06} {} INFO dfs.DataNode$PacketResponder: PacketResponder {} for block blk_{} terminating",
                r % 240000,
                r % 999,
                r % 3,
                r
            ),
            1 => format!(
                "081109 {:06} {} INFO dfs.DataNode$DataXceiver: Receiving block blk_{} src: /10.250.{}.{}:{} dest: /10.250.{}.{}:50010",
                r % 240000,
                r % 999,
                r,
                r % 255,
                r % 254,
                r % 65535,
                r % 253,
                r % 252
            ),
            2 => format!(
                "Dec 10 {:02}:{:02}:{:02} LabSZ sshd[{}]: Failed password for {u} from 183.62.{}.{} port {} ssh2",
                r % 24,
                r % 60,
                r % 59,
                r % 30000,
                r % 255,
                r % 254,
                r % 65535
            ),
            3 => format!(
                "Dec 10 {:02}:{:02}:{:02} LabSZ sshd[{}]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=112.95.{}.{}  user={u}",
                r % 24,
                r % 60,
                r % 59,
                r % 30000,
                r % 255,
                r % 254
            ),
            4 => format!(
                r#"{{"timestamp":"2024-05-01T10:{:02}:{:02}.{:03}Z","level":"INFO","target":"orders::http","fields":{{"message":"request finished","method":"GET","path":"/orders/{}","status":200,"latency_ms":{}}}}}"#,
                r % 60,
                r % 59,
                r % 1000,
                r % 100000,
                r % 700
            ),
            5 => format!(
                "ts=2024-05-01T10:00:{:02}Z level=info msg=\"cache refreshed\" entries={} took={}ms",
                r % 60,
                r % 10000,
                r % 90
            ),
            6 => format!(
                "17/06/09 20:10:{:02} INFO executor.Executor: Finished task {}.0 in stage {}.0 (TID {}). {} bytes result sent to driver",
                r % 60,
                r % 400,
                r % 40,
                r % 10000,
                r % 5000
            ),
            7 => format!(
                "- {} 2005.06.03 R{:02}-M1-N{}-C:J12-U11 2005-06-03-15.42.50.{:06} R{:02}-M1-N{}-C:J12-U11 RAS KERNEL INFO instruction cache parity error corrected",
                1117838570 + r % 100000,
                r % 64,
                r % 16,
                r % 1000000,
                r % 64,
                r % 16
            ),
            8 => format!(
                "[Sun Dec 04 {:02}:{:02}:44 2005] [notice] jk2_init() Found child {} in scoreboard slot {}",
                r % 24,
                r % 60,
                r % 30000,
                r % 10
            ),
            9 => format!(
                "2015-07-29 17:41:{:02},{:03} - INFO  [QuorumPeer[myid={}]/0:0:0:0:0:0:0:0:2181:FastLeaderElection@774] - Notification time out: {}",
                r % 60,
                r % 1000,
                r % 3,
                r % 60000
            ),
            10 => format!(
                "2024-05-01 10:00:{:02},{:03} ERROR [main] com.example.orders.App: Unhandled exception in request {}",
                r % 60,
                r % 1000,
                r % 100000
            ),
            _ => format!(
                "[10.30 16:49:{:02}] {}.exe - {}.example.com:443 open through proxy proxy.cse.cuhk.edu.hk:5070 HTTPS",
                r % 60,
                users[r % 3],
                users[(r >> 8) % 8]
            ),
        };
        lines.push(line);
    }
    lines
}

fn main() {
    let n = 1_000_000;
    let lines = mix(n);
    let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
    let mut best = f64::MAX;
    let mut templates = 0;
    for _ in 0..3 {
        let t = Instant::now();
        let mut miner = Miner::unbounded();
        let ids: Vec<_> = lines.iter().map(|l| miner.observe(l).id).collect();
        miner.consolidate();
        let resolved: u64 = ids.iter().map(|&id| u64::from(miner.resolve(id).0)).sum();
        black_box(resolved);
        best = best.min(t.elapsed().as_secs_f64());
        templates = ids
            .iter()
            .map(|&id| miner.resolve(id))
            .collect::<std::collections::HashSet<_>>()
            .len();
    }
    println!(
        "logmine: {n} lines ({:.1} MB, 12 formats) in {:.3}s: {:.0} lines/s, {:.0} MB/s, {templates} templates",
        bytes as f64 / 1e6,
        best,
        n as f64 / best,
        bytes as f64 / 1e6 / best
    );
}
