//! A labelled development corpus for the template miner, generated (no downloads).
//!
//! Each [`Family`] is a generator of whole log lines (header included, as a file holds them) in
//! the style of a public log kind the miner is known to find hard: Proxifier-like proxy logs,
//! OpenSSH, OpenStack nova, syslog with many daemons, logfmt key=value, JSON service logs, and
//! — held out, never used to choose the miner's rules or its one configuration — Android
//! logcat, Windows CBS, macOS syslog and Apache access logs. Every line carries the label of
//! the template that produced it: the ground truth for grouping accuracy.
//!
//! The lines mix what makes mining hard: key=value and JSON fields, IPs, ports, paths, URLs,
//! hex ids, durations with units, quoted strings, variable-length lists, punctuation glued to
//! tokens, values that are words (user names, host names), templates that differ in one word,
//! and headers whose fields vary within one template (process names, components, request
//! contexts). Frequencies are skewed like real logs: a few templates make most lines.
//!
//! ```
//! use aiops_platform::logmine::corpus::{Family, generate};
//! let lines = generate(Family::Proxy, 100, 7);
//! assert_eq!(lines.len(), 100);
//! assert!(lines.iter().all(|l| !l.template.is_empty()));
//! ```

/// A generator family (a log style).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// Proxifier-like: `[10.30 16:49:06] chrome.exe - host:443 close, 0 bytes sent, ...`.
    Proxy,
    /// OpenSSH server logs under a syslog header.
    Sshd,
    /// OpenStack nova-like: long headers with request contexts, HTTP access lines, instances.
    Nova,
    /// Linux / Thunderbird-like syslog: many daemons and hosts share message templates.
    Syslog,
    /// logfmt `key=value` lines with quoted messages, durations and lists.
    Logfmt,
    /// JSON service logs with nested fields and arrays.
    Json,
    /// Held out. Android logcat with nested braces and `key = value` runs.
    Android,
    /// Held out. Windows CBS/CSI with hex results, backslash paths and stack lists.
    Windows,
    /// Held out. macOS syslog with `::`-glued names and spaces in process names.
    Mac,
    /// Held out. Apache combined access logs and error logs.
    Access,
}

impl Family {
    /// Every family, development ones first.
    pub const ALL: [Self; 10] = [
        Self::Proxy,
        Self::Sshd,
        Self::Nova,
        Self::Syslog,
        Self::Logfmt,
        Self::Json,
        Self::Android,
        Self::Windows,
        Self::Mac,
        Self::Access,
    ];

    /// The family's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Proxy => "proxy",
            Self::Sshd => "sshd",
            Self::Nova => "nova",
            Self::Syslog => "syslog",
            Self::Logfmt => "logfmt",
            Self::Json => "json",
            Self::Android => "android",
            Self::Windows => "windows",
            Self::Mac => "mac",
            Self::Access => "access",
        }
    }

    /// Whether the family is held out: used only to judge the default, never to tune it.
    pub fn held_out(self) -> bool {
        matches!(
            self,
            Self::Android | Self::Windows | Self::Mac | Self::Access
        )
    }

    /// The family named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// One generated line and the label of its true template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelledLine {
    /// The template's label (unique within the family).
    pub template: &'static str,
    /// The whole line.
    pub line: String,
}

/// `n` lines of `family`, reproducible from `seed`.
pub fn generate(family: Family, n: usize, seed: u64) -> Vec<LabelledLine> {
    let mut g = Gen::new(seed ^ (family as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    (0..n)
        .map(|_| {
            let (template, line) = match family {
                Family::Proxy => proxy(&mut g),
                Family::Sshd => sshd(&mut g),
                Family::Nova => nova(&mut g),
                Family::Syslog => syslog(&mut g),
                Family::Logfmt => logfmt(&mut g),
                Family::Json => json(&mut g),
                Family::Android => android(&mut g),
                Family::Windows => windows(&mut g),
                Family::Mac => mac(&mut g),
                Family::Access => access(&mut g),
            };
            LabelledLine { template, line }
        })
        .collect()
}

/// A small deterministic generator (splitmix64).
struct Gen(u64);

impl Gen {
    fn new(seed: u64) -> Self {
        Self(seed)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
    /// An index drawn with the given weights.
    fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        let mut r = self.below(total);
        for (i, &w) in weights.iter().enumerate() {
            if r < u64::from(w) {
                return i;
            }
            r -= u64::from(w);
        }
        weights.len() - 1
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn ip(&mut self) -> String {
        format!(
            "{}.{}.{}.{}",
            self.range(1, 223),
            self.below(256),
            self.below(256),
            self.range(1, 254)
        )
    }
    fn port(&mut self) -> u64 {
        self.range(1024, 65535)
    }
    fn hex(&mut self, len: usize) -> String {
        const H: &[u8] = b"0123456789abcdef";
        (0..len)
            .map(|_| char::from(H[self.below(16) as usize]))
            .collect()
    }
    fn uuid(&mut self) -> String {
        format!(
            "{}-{}-{}-{}-{}",
            self.hex(8),
            self.hex(4),
            self.hex(4),
            self.hex(4),
            self.hex(12)
        )
    }
    fn time(&mut self) -> String {
        format!(
            "{:02}:{:02}:{:02}",
            self.below(24),
            self.below(60),
            self.below(60)
        )
    }
    fn float(&mut self, max: u64, decimals: usize) -> String {
        let whole = self.below(max);
        let frac = self.below(10u64.pow(decimals as u32));
        format!("{whole}.{frac:0decimals$}")
    }
    /// A user name: mostly words, sometimes with digits.
    fn user(&mut self) -> String {
        const USERS: &[&str] = &[
            "root",
            "admin",
            "test",
            "guest",
            "oracle",
            "ubuntu",
            "postgres",
            "git",
            "webmaster",
            "support",
            "user",
            "nagios",
            "ftpuser",
            "pi",
            "mysql",
            "tomcat",
            "hadoop",
            "jenkins",
            "www",
            "deploy",
            "backup",
            "operator",
            "info",
            "sales",
            "alice",
            "bob",
        ];
        if self.chance(10) {
            format!("{}{}", self.pick(USERS), self.range(1, 999))
        } else {
            self.pick(USERS).to_owned()
        }
    }
    /// A host name: words only, or with digits and dashes.
    fn host(&mut self) -> String {
        const WORDS: &[&str] = &[
            "mail", "ns", "www", "smtp", "static", "gateway", "vpn", "edge", "mx", "cdn",
        ];
        const DOMAINS: &[&str] = &[
            "example.com",
            "example.net",
            "cuhk.edu.hk",
            "provider.org",
            "dropbox.com",
            "google.com",
            "cloud.example.io",
        ];
        match self.below(3) {
            0 => format!("{}.{}", self.pick(WORDS), self.pick(DOMAINS)),
            1 => format!(
                "{}-{}-{}-{}.{}",
                self.below(256),
                self.below(256),
                self.below(256),
                self.below(256),
                self.pick(DOMAINS)
            ),
            _ => format!(
                "{}{}.{}",
                self.pick(WORDS),
                self.range(1, 99),
                self.pick(DOMAINS)
            ),
        }
    }
    fn path(&mut self) -> String {
        const PARTS: &[&str] = &[
            "var", "lib", "data", "cache", "images", "user", "root", "tmp", "srv", "app",
        ];
        let depth = self.range(2, 5);
        let mut p = String::new();
        for _ in 0..depth {
            p.push('/');
            p.push_str(self.pick(PARTS));
        }
        if self.chance(50) {
            p.push_str(&format!("/{}", self.hex(6)));
        }
        p
    }
    fn duration(&mut self) -> String {
        match self.below(4) {
            0 => format!("{}ms", self.range(1, 999)),
            1 => format!("{}s", self.float(30, 3)),
            2 => format!("{}µs", self.range(1, 999)),
            _ => format!("{}m{}s", self.range(1, 9), self.below(60)),
        }
    }
}

fn proxy(g: &mut Gen) -> (&'static str, String) {
    const PROGS: &[&str] = &[
        "chrome.exe",
        "firefox.exe",
        "Dropbox.exe",
        "Skype.exe",
        "svchost.exe",
        "WeChat.exe",
        "git-remote-https.exe",
        "QQProtect.exe",
    ];
    const SITES: &[&str] = &[
        "www.google.com",
        "mtalk.google.com",
        "clients4.google.com",
        "d.dropbox.com",
        "client-s.gateway.messenger.live.com",
        "proxy.cse.cuhk.edu.hk",
        "api.github.com",
        "play.google.com",
    ];
    let header = format!(
        "[{:02}.{:02} {}] {} - ",
        g.range(10, 12),
        g.range(1, 30),
        g.time(),
        g.pick(PROGS)
    );
    let target = if g.chance(20) {
        format!("{}:{}", g.ip(), g.pick(&["443", "80", "5228"]))
    } else {
        format!("{}:{}", g.pick(SITES), g.pick(&["443", "80", "5228"]))
    };
    let lifetime = |g: &mut Gen| match g.below(4) {
        0 => "<1 sec".to_owned(),
        1 | 2 => format!("{:02}:{:02}", g.below(60), g.below(60)),
        _ => format!(
            "{:02}:{:02}:{:02}",
            g.range(1, 23),
            g.below(60),
            g.below(60)
        ),
    };
    let sized = |g: &mut Gen| format!("{} bytes ({} KB)", g.range(1024, 999_999), g.float(999, 2));
    let which = g.weighted(&[30, 3, 30, 10, 8, 5, 2, 1]);
    let (label, body) = match which {
        0 => (
            "open-https",
            format!("{target} open through proxy proxy.cse.cuhk.edu.hk:5070 HTTPS"),
        ),
        1 => (
            "open-socks",
            format!("{target} open through proxy proxy.cse.cuhk.edu.hk:5070 SOCKS5"),
        ),
        2 => (
            "close-plain",
            format!(
                "{target} close, {} bytes sent, {} bytes received, lifetime {}",
                g.below(1024),
                g.below(1024),
                lifetime(g)
            ),
        ),
        3 => (
            "close-sized-received",
            format!(
                "{target} close, {} bytes sent, {} received, lifetime {}",
                g.below(1024),
                sized(g),
                lifetime(g)
            ),
        ),
        4 => (
            "close-sized-both",
            format!(
                "{target} close, {} sent, {} received, lifetime {}",
                sized(g),
                sized(g),
                lifetime(g)
            ),
        ),
        5 => (
            "error-status",
            format!(
                "{target} error : Could not connect through proxy proxy.cse.cuhk.edu.hk:5070 - Proxy server cannot establish a connection with the target, status code {}",
                g.pick(&["403", "502", "504"])
            ),
        ),
        6 => (
            "error-resolve",
            format!(
                "{target} error : Could not connect to proxy {}:5070 - Could not resolve {} error {}",
                g.pick(&["proxy.cse.cuhk.edu.hk", "proxy.example.com"]),
                g.pick(&["proxy.cse.cuhk.edu.hk", "proxy.example.com"]),
                g.range(11001, 11004)
            ),
        ),
        _ => (
            "error-canceled",
            format!("{target} error : A connection request was canceled before the completion."),
        ),
    };
    (label, header + &body)
}

fn sshd(g: &mut Gen) -> (&'static str, String) {
    let header = format!(
        "Dec {:>2} {} LabSZ sshd[{}]: ",
        g.range(1, 31),
        g.time(),
        g.range(1000, 32000)
    );
    let rhost = |g: &mut Gen| if g.chance(50) { g.ip() } else { g.host() };
    let failed_user = |g: &mut Gen| {
        if g.chance(70) {
            "root".to_owned()
        } else {
            g.user()
        }
    };
    let which = g.weighted(&[
        25, 8, 2, 2, 8, 6, 15, 4, 5, 10, 4, 5, 6, 2, 2, 1, 1, 2, 1, 1,
    ]);
    let (label, body) = match which {
        0 => (
            "failed-password",
            format!(
                "Failed password for {} from {} port {} ssh2",
                failed_user(g),
                g.ip(),
                g.port()
            ),
        ),
        1 => (
            "failed-password-invalid",
            format!(
                "Failed password for invalid user {} from {} port {} ssh2",
                g.user(),
                g.ip(),
                g.port()
            ),
        ),
        2 => (
            "failed-none-invalid",
            format!(
                "Failed none for invalid user {} from {} port {} ssh2",
                g.user(),
                g.ip(),
                g.port()
            ),
        ),
        3 => (
            "accepted-password",
            format!(
                "Accepted password for {} from {} port {} ssh2",
                g.user(),
                g.ip(),
                g.port()
            ),
        ),
        4 => (
            "invalid-user",
            format!("Invalid user {} from {}", g.user(), g.ip()),
        ),
        5 => (
            "userauth-request",
            format!(
                "input_userauth_request: invalid user {} [preauth]",
                g.user()
            ),
        ),
        6 => (
            "pam-failure-user",
            format!(
                "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={}  user={}",
                rhost(g),
                failed_user(g)
            ),
        ),
        7 => (
            "pam-failure",
            format!(
                "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={}",
                rhost(g)
            ),
        ),
        8 => (
            "pam-check-pass",
            "pam_unix(sshd:auth): check pass; user unknown".to_owned(),
        ),
        9 => (
            "reverse-mapping",
            format!(
                "reverse mapping checking getaddrinfo for {} [{}] failed - POSSIBLE BREAK-IN ATTEMPT!",
                g.host(),
                g.ip()
            ),
        ),
        10 => (
            "address-maps",
            format!(
                "Address {} maps to {}, but this does not map back to the address - POSSIBLE BREAK-IN ATTEMPT!",
                g.ip(),
                g.host()
            ),
        ),
        11 => (
            "disconnect-bye",
            format!("Received disconnect from {}: 11: Bye Bye [preauth]", g.ip()),
        ),
        12 => (
            "connection-closed",
            format!("Connection closed by {} [preauth]", g.ip()),
        ),
        13 => (
            "message-repeated",
            format!(
                "message repeated {} times: [ Failed password for {} from {} port {} ssh2]",
                g.range(2, 5),
                failed_user(g),
                g.ip(),
                g.port()
            ),
        ),
        14 => (
            "pam-more-failures",
            format!(
                "PAM {} more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost={}  user={}",
                g.range(1, 5),
                rhost(g),
                failed_user(g)
            ),
        ),
        15 => (
            "too-many-failures",
            format!(
                "Disconnecting: Too many authentication failures for {} [preauth]",
                g.user()
            ),
        ),
        16 => (
            "ignoring-retries",
            format!(
                "PAM service(sshd) ignoring max retries; {} > 3",
                g.range(4, 6)
            ),
        ),
        17 => (
            "no-identification",
            format!("Did not receive identification string from {}", g.ip()),
        ),
        18 => (
            "session-opened",
            format!(
                "pam_unix(sshd:session): session opened for user {} by (uid=0)",
                g.user()
            ),
        ),
        _ => (
            "session-closed",
            format!(
                "pam_unix(sshd:session): session closed for user {}",
                g.user()
            ),
        ),
    };
    (label, header + &body)
}

fn nova(g: &mut Gen) -> (&'static str, String) {
    let tenant = "54fadb412c4e40cdbaed9335e4c35a9e";
    let which = g.weighted(&[40, 6, 4, 6, 2, 2, 1, 5, 5, 4, 4, 3, 3, 2, 2, 1]);
    let (label, file, level, component, body) = match which {
        0 => {
            let path = match g.below(3) {
                0 => format!("/v2/{tenant}/servers/detail"),
                1 => format!("/v2/{tenant}/servers/{}", g.uuid()),
                _ => format!("/v2/{tenant}/flavors/{}", g.range(1, 9)),
            };
            (
                "api-get",
                "nova-api",
                "INFO",
                "nova.osapi_compute.wsgi.server",
                format!(
                    "{} \"GET {path} HTTP/1.1\" status: 200 len: {} time: {}",
                    g.ip(),
                    g.range(200, 9000),
                    g.float(2, 7)
                ),
            )
        }
        1 => (
            "api-post",
            "nova-api",
            "INFO",
            "nova.osapi_compute.wsgi.server",
            format!(
                "{} \"POST /v2/{tenant}/os-server-external-events HTTP/1.1\" status: {} len: {} time: {}",
                g.ip(),
                g.pick(&["200", "202"]),
                g.range(200, 900),
                g.float(2, 7)
            ),
        ),
        2 => (
            "api-delete",
            "nova-api",
            "INFO",
            "nova.osapi_compute.wsgi.server",
            format!(
                "{} \"DELETE /v2/{tenant}/servers/{} HTTP/1.1\" status: 204 len: {} time: {}",
                g.ip(),
                g.uuid(),
                g.range(200, 300),
                g.float(2, 7)
            ),
        ),
        3 => (
            "api-get",
            "nova-api",
            "INFO",
            "nova.metadata.wsgi.server",
            format!(
                "{} \"GET /openstack/2013-10-17/meta_data.json HTTP/1.1\" status: 200 len: {} time: {}",
                g.ip(),
                g.range(200, 9000),
                g.float(2, 7)
            ),
        ),
        4 => (
            "vm-paused",
            "nova-compute",
            "INFO",
            "nova.compute.manager",
            format!("[instance: {}] VM Paused (Lifecycle Event)", g.uuid()),
        ),
        5 => (
            "vm-resumed",
            "nova-compute",
            "INFO",
            "nova.compute.manager",
            format!("[instance: {}] VM Resumed (Lifecycle Event)", g.uuid()),
        ),
        6 => (
            "vm-stopped",
            "nova-compute",
            "INFO",
            "nova.compute.manager",
            format!("[instance: {}] VM Stopped (Lifecycle Event)", g.uuid()),
        ),
        7 => (
            "vm-started",
            "nova-compute",
            "INFO",
            "nova.compute.manager",
            format!("[instance: {}] VM Started (Lifecycle Event)", g.uuid()),
        ),
        8 => (
            "took-spawn",
            "nova-compute",
            "INFO",
            "nova.compute.manager",
            format!(
                "[instance: {}] Took {} seconds to spawn the instance on the hypervisor.",
                g.uuid(),
                g.float(30, 2)
            ),
        ),
        9 => (
            "took-build",
            "nova-compute",
            "INFO",
            "nova.compute.manager",
            format!(
                "[instance: {}] Took {} seconds to build instance.",
                g.uuid(),
                g.float(30, 2)
            ),
        ),
        10 => (
            "claim-attempt",
            "nova-compute",
            "INFO",
            "nova.compute.claims",
            format!(
                "[instance: {}] Attempting claim: memory {} MB, disk {} GB, vcpus {} CPU",
                g.uuid(),
                g.pick(&["512", "2048", "4096"]),
                g.range(1, 80),
                g.range(1, 8)
            ),
        ),
        11 => (
            "claim-successful",
            "nova-compute",
            "INFO",
            "nova.compute.claims",
            format!("[instance: {}] Claim successful", g.uuid()),
        ),
        12 => (
            "final-resource-view",
            "nova-compute",
            "INFO",
            "nova.compute.resource_tracker",
            format!(
                "Final resource view: name=cp-1.slowvm1.tcloud-pg0.utah.cloudlab.us phys_ram={}MB used_ram={}MB phys_disk={}GB used_disk={}GB total_vcpus={} used_vcpus={} pci_stats=[]",
                g.pick(&["64172", "32768"]),
                g.range(512, 64000),
                g.range(15, 900),
                g.range(0, 900),
                g.pick(&["16", "32"]),
                g.range(0, 16)
            ),
        ),
        13 => (
            "image-checking",
            "nova-compute",
            "INFO",
            "nova.virt.libvirt.imagecache",
            format!(
                "image {} at ({}/{}): checking",
                g.uuid(),
                "/var/lib/nova/instances/_base",
                g.hex(40)
            ),
        ),
        14 => (
            "unknown-base",
            "nova-compute",
            "INFO",
            "nova.virt.libvirt.imagecache",
            format!(
                "Unknown base file: /var/lib/nova/instances/_base/{}",
                g.hex(40)
            ),
        ),
        _ => (
            "sync-pending",
            "nova-compute",
            "WARNING",
            "nova.compute.manager",
            format!(
                "[instance: {}] During sync_power_state the instance has a pending task (spawning). Skip.",
                g.uuid()
            ),
        ),
    };
    let context = if g.chance(60) {
        format!("{} {tenant} - - -", g.hex(32))
    } else {
        "- - - - -".to_owned()
    };
    let line = format!(
        "{file}.log.1.2017-05-16_13:53:08 2017-05-16 {}.{:03} {} {level} {component} [req-{} {context}] {body}",
        g.time(),
        g.below(1000),
        g.range(1000, 32000),
        g.uuid()
    );
    (label, line)
}

fn syslog(g: &mut Gen) -> (&'static str, String) {
    const HOSTS: &[&str] = &["combo", "dn228", "an706", "tbird-admin1", "ln12"];
    let host = g.pick(HOSTS);
    let month = g.pick(&["Jun", "Jul", "Nov"]);
    let prefix = format!("{month} {:>2} {} {host} ", g.range(1, 30), g.time());
    let pid = g.range(100, 32000);
    let which = g.weighted(&[20, 15, 8, 6, 6, 4, 5, 3, 3, 3, 2, 2, 4]);
    let (label, process, body) = match which {
        0 => (
            "session-opened",
            format!(
                "{}(pam_unix)[{pid}]",
                g.pick(&["crond", "su", "sshd", "login"])
            ),
            format!(
                "session opened for user {} by (uid={})",
                g.user(),
                g.pick(&["0", "500", "1000"])
            ),
        ),
        1 => (
            "session-closed",
            format!(
                "{}(pam_unix)[{pid}]",
                g.pick(&["crond", "su", "sshd", "login"])
            ),
            format!("session closed for user {}", g.user()),
        ),
        2 => (
            "auth-failure",
            format!("{}(pam_unix)[{pid}]", g.pick(&["sshd", "login", "ftpd"])),
            format!(
                "authentication failure; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost={}",
                if g.chance(50) { g.ip() } else { g.host() }
            ),
        ),
        3 => (
            "check-pass",
            format!("{}(pam_unix)[{pid}]", g.pick(&["sshd", "login"])),
            "check pass; user unknown".to_owned(),
        ),
        4 => (
            "ftp-connection",
            format!("ftpd[{pid}]"),
            format!(
                "connection from {} ({}) at {} {month} {:>2} {} 2005",
                g.ip(),
                g.host(),
                g.pick(&["Mon", "Tue", "Fri", "Sun"]),
                g.range(1, 30),
                g.time()
            ),
        ),
        5 => (
            "ftp-anonymous",
            format!("ftpd[{pid}]"),
            format!("ANONYMOUS FTP LOGIN FROM {}, (anonymous)", g.ip()),
        ),
        6 => (
            "xinetd-start",
            format!("xinetd[{pid}]"),
            format!(
                "START: {} pid={} from={}",
                g.pick(&["ftp", "telnet"]),
                g.range(100, 32000),
                g.ip()
            ),
        ),
        7 => (
            "oom-killed",
            "kernel".to_owned(),
            format!(
                "Out of Memory: Killed process {} ({}).",
                g.range(100, 32000),
                g.pick(&["httpd", "java", "sendmail", "mysqld"])
            ),
        ),
        8 => (
            "usb-new",
            "kernel".to_owned(),
            format!(
                "usb {}-{}: new full speed USB device using uhci_hcd and address {}",
                g.range(1, 4),
                g.range(1, 2),
                g.range(2, 9)
            ),
        ),
        9 => (
            "gmetad-no-answer",
            format!("/apps/x86_64/system/ganglia-3.0.1/sbin/gmetad[{pid}]"),
            format!(
                "data_thread() got not answer from any [{}] datasource",
                g.pick(&["Thunderbird_A8", "Thunderbird_B2", "Thunderbird_C5"])
            ),
        ),
        10 => (
            "logrotate-alert",
            "logrotate".to_owned(),
            "ALERT exited abnormally with [1]".to_owned(),
        ),
        11 => (
            "syslogd-restart",
            "syslogd 1.4.1".to_owned(),
            "restart.".to_owned(),
        ),
        _ => (
            "ib-link",
            "kernel".to_owned(),
            format!(
                "ib_sm_sweep.c:{}: No topology change",
                g.pick(&["1455", "1482"])
            ),
        ),
    };
    (label, format!("{prefix}{process}: {body}"))
}

fn logfmt(g: &mut Gen) -> (&'static str, String) {
    let ts = format!(
        "ts=2024-05-01T{}.{:03}Z level={}",
        g.time(),
        g.below(1000),
        g.pick(&["info", "warn", "error", "debug"])
    );
    let caller = format!(
        "caller={}.go:{}",
        g.pick(&["server", "store", "queue"]),
        g.range(10, 400)
    );
    let list = |g: &mut Gen| {
        let n = g.range(1, 5);
        let items: Vec<String> = (0..n).map(|_| g.range(1, 9999).to_string()).collect();
        format!("[{}]", items.join(","))
    };
    let which = g.weighted(&[30, 10, 8, 8, 6, 5, 4, 3, 2]);
    let (label, body) = match which {
        0 => (
            "request-served",
            format!(
                "msg=\"request served\" method={} path=/api/v1/{}/{} status={} dur={} bytes={}",
                g.pick(&["GET", "POST", "PUT", "DELETE"]),
                g.pick(&["items", "orders", "users"]),
                g.range(1, 99999),
                g.pick(&["200", "201", "404", "500"]),
                g.duration(),
                g.range(0, 99999)
            ),
        ),
        1 => (
            "cache-refreshed",
            format!(
                "msg=\"cache refreshed\" entries={} took={}",
                g.range(0, 99999),
                g.duration()
            ),
        ),
        2 => (
            "connection-reset",
            format!(
                "msg=\"connection reset\" peer={}:{} retries={} err=\"{}\"",
                g.ip(),
                g.port(),
                g.range(0, 5),
                g.pick(&[
                    "broken pipe",
                    "connection reset by peer",
                    "i/o timeout",
                    "EOF"
                ])
            ),
        ),
        3 => (
            "batch-flushed",
            format!(
                "msg=\"batch flushed\" ids={} size={}KiB queue={}",
                list(g),
                g.range(1, 4096),
                g.pick(&["ingest", "email", "billing", "audit"])
            ),
        ),
        4 => (
            "user-login",
            format!(
                "msg=\"user logged in\" user={} from={} session={}",
                g.user(),
                g.ip(),
                g.hex(16)
            ),
        ),
        5 => (
            "user-logout",
            format!(
                "msg=\"user logged out\" user={} session={} after={}",
                g.user(),
                g.hex(16),
                g.duration()
            ),
        ),
        6 => (
            "slow-query",
            format!(
                "msg=\"slow query\" table={} rows={} took={} query=\"SELECT * FROM {} WHERE id = {}\"",
                g.pick(&["orders", "users", "events"]),
                g.range(0, 100000),
                g.duration(),
                g.pick(&["orders", "users", "events"]),
                g.range(1, 99999)
            ),
        ),
        7 => (
            "config-reloaded",
            format!(
                "msg=\"config reloaded\" file={}/config.yaml version={} changed={}",
                g.path(),
                g.hex(7),
                g.pick(&["true", "false"])
            ),
        ),
        _ => (
            "leader-elected",
            format!(
                "msg=\"leader elected\" node={} term={} url=http://{}:{}/raft",
                g.pick(&["node-a", "node-b", "node-c"]),
                g.range(1, 999),
                g.host(),
                g.port()
            ),
        ),
    };
    (label, format!("{ts} {caller} {body}"))
}

fn json(g: &mut Gen) -> (&'static str, String) {
    let ts = format!(
        "\"timestamp\":\"2024-05-01T{}.{:06}Z\",\"level\":\"{}\"",
        g.time(),
        g.below(1_000_000),
        g.pick(&["INFO", "WARN", "ERROR"])
    );
    let which = g.weighted(&[30, 10, 8, 6, 6, 4, 3]);
    let (label, target, fields) = match which {
        0 => (
            "request-finished",
            "orders::http",
            format!(
                "\"message\":\"request finished\",\"method\":\"{}\",\"path\":\"/orders/{}\",\"status\":{},\"latency_ms\":{}",
                g.pick(&["GET", "POST"]),
                g.range(1, 99999),
                g.pick(&["200", "201", "404"]),
                g.float(900, 3)
            ),
        ),
        1 => (
            "slow-query",
            "orders::db",
            format!(
                "\"message\":\"slow query\",\"duration\":\"{}\",\"rows\":{}",
                g.duration(),
                g.range(0, 5000)
            ),
        ),
        2 => (
            "payment-declined",
            "payments::gateway",
            format!(
                "\"message\":\"payment declined\",\"order_id\":\"{}\",\"reason\":\"{}\",\"amount\":{}",
                g.uuid(),
                g.pick(&["insufficient funds", "card expired", "fraud suspected"]),
                g.float(500, 2)
            ),
        ),
        3 => ("items-reserved", "inventory::stock", {
            let n = g.range(1, 6);
            let skus: Vec<String> = (0..n)
                .map(|_| format!("\"SKU-{}\"", g.range(100, 999)))
                .collect();
            format!(
                "\"message\":\"items reserved\",\"order_id\":\"{}\",\"skus\":[{}]",
                g.uuid(),
                skus.join(",")
            )
        }),
        4 => (
            "retrying-call",
            "orders::client",
            format!(
                "\"message\":\"retrying call\",\"url\":\"http://{}:{}/v1/{}\",\"attempt\":{},\"backoff\":\"{}\"",
                g.host(),
                g.port(),
                g.pick(&["pay", "stock", "ship"]),
                g.range(1, 5),
                g.duration()
            ),
        ),
        5 => (
            "user-created",
            "users::api",
            format!(
                "\"message\":\"user created\",\"user\":\"{}\",\"email\":\"{}@example.com\",\"admin\":{}",
                g.user(),
                g.user(),
                g.pick(&["true", "false"])
            ),
        ),
        _ => (
            "shutdown",
            "orders::main",
            format!(
                "\"message\":\"shutting down\",\"signal\":\"{}\",\"uptime\":\"{}\"",
                g.pick(&["SIGTERM", "SIGINT"]),
                g.duration()
            ),
        ),
    };
    (
        label,
        format!("{{{ts},\"target\":\"{target}\",\"fields\":{{{fields}}}}}"),
    )
}

fn android(g: &mut Gen) -> (&'static str, String) {
    let header = |g: &mut Gen, level: &str, tag: &str| {
        format!(
            "03-17 {}.{:03}  {:>4}  {:>4} {level} {tag}: ",
            g.time(),
            g.below(1000),
            g.range(100, 9999),
            g.range(100, 9999)
        )
    };
    let activity = |g: &mut Gen| {
        format!(
            "AppWindowToken{{{} token=Token{{{} ActivityRecord{{{} u0 {}/{} t{}}}}}}}",
            g.hex(7),
            g.hex(7),
            g.hex(7),
            g.pick(&[
                "com.tencent.qt.qtl",
                "com.android.settings",
                "com.example.shop"
            ]),
            g.pick(&[
                ".activity.info.NewsDetailXmlActivity",
                ".MainActivity",
                ".SubSettings"
            ]),
            g.range(100, 999)
        )
    };
    let which = g.weighted(&[20, 12, 15, 15, 6, 5, 5, 4]);
    match which {
        0 => {
            let h = header(g, "I", "WindowManager");
            let b = |g: &mut Gen| g.pick(&["true", "false"]);
            (
                "freezing-display",
                format!(
                    "{h}printFreezingDisplayLogsopening app wtoken = {}, allDrawn= {}, startingDisplayed =  {}, startingMoved =  {}, isRelaunching =  {}",
                    activity(g),
                    b(g),
                    b(g),
                    b(g),
                    b(g)
                ),
            )
        }
        1 => {
            let h = header(g, "V", "WindowManager");
            (
                "skipping-token",
                format!("{h}Skipping {} -- going to hide", activity(g)),
            )
        }
        2 => {
            let h = header(g, "D", "PowerManagerService");
            (
                "acquire-lock",
                format!(
                    "{h}acquire lock={}, flags=0x{}, tag=\"{}\", name={}, ws={}, uid={}, pid={}",
                    g.range(1_000_000, 999_999_999),
                    g.hex(1),
                    g.pick(&["*alarm*", "RILJ_ACK_WL", "View Lock", "WifiScan"]),
                    g.pick(&["android", "com.android.phone", "com.tencent.mm"]),
                    if g.chance(50) {
                        "null".to_owned()
                    } else {
                        format!("WorkSource{{{}}}", g.range(1000, 10999))
                    },
                    g.range(1000, 10999),
                    g.range(100, 9999)
                ),
            )
        }
        3 => {
            let h = header(g, "D", "PowerManagerService");
            (
                "release-lock",
                format!(
                    "{h}release:lock={}, flg=0x0, tag=\"{}\", name={}, ws={}, uid={}, pid={}",
                    g.range(1_000_000, 999_999_999),
                    g.pick(&["*alarm*", "RILJ_ACK_WL", "View Lock", "WifiScan"]),
                    g.pick(&["android", "com.android.phone", "com.tencent.mm"]),
                    if g.chance(50) {
                        "null".to_owned()
                    } else {
                        format!("WorkSource{{{}}}", g.range(1000, 10999))
                    },
                    g.range(1000, 10999),
                    g.range(100, 9999)
                ),
            )
        }
        4 => {
            let h = header(g, "W", "ActivityManager");
            (
                "slow-operation",
                format!(
                    "{h}Slow operation: {}ms so far, now at startProcess: returned from zygote!",
                    g.range(50, 999)
                ),
            )
        }
        5 => {
            let h = header(g, "I", "ActivityManager");
            let pkg = g.pick(&["com.tencent.mm", "com.android.phone", "com.example.shop"]);
            (
                "start-proc",
                format!(
                    "{h}Start proc {}:{pkg}/u0a{} for service {pkg}/.{}",
                    g.range(1000, 30000),
                    g.range(10, 200),
                    g.pick(&["PushService", "SyncService", "plugin.Worker"])
                ),
            )
        }
        6 => {
            let h = header(g, "E", "ActivityManager");
            (
                "running-processes",
                format!(
                    "{h}getRunningAppProcesses: caller {} does not hold REAL_GET_TASKS; limiting output",
                    g.range(10000, 10999)
                ),
            )
        }
        _ => {
            let h = header(g, "D", "DisplayPowerController");
            let n = g.range(1, 4);
            let states: Vec<&str> = (0..n).map(|_| g.pick(&["ON", "OFF", "DOZE"])).collect();
            (
                "display-states",
                format!("{h}Display states changed: [{}]", states.join(", ")),
            )
        }
    }
}

fn windows(g: &mut Gen) -> (&'static str, String) {
    let date = format!("2016-09-{:02} {}, ", g.range(1, 30), g.time());
    let which = g.weighted(&[15, 10, 25, 8, 6, 6, 5, 5, 5, 4, 3]);
    let (label, component, body) = match which {
        0 => ("wcp-initialize", "CSI", {
            let n = g.range(3, 7);
            let frames: Vec<String> = (0..n).map(|_| format!("@0x{}", g.hex(11))).collect();
            format!(
                "{:08}@2016/9/{}:{}.{:03} WcpInitialize (wcp.dll version 0.0.0.6) called (stack {})",
                g.range(1, 999),
                g.range(1, 30),
                g.time(),
                g.below(1000),
                frames.join(" ")
            )
        }),
        1 => (
            "session-initialized",
            "CBS",
            format!(
                "Session: {}_{} initialized by client {}.",
                g.range(30_000_000, 30_999_999),
                g.range(1_000_000_000, 3_999_999_999),
                g.pick(&["WindowsUpdateAgent", "Microsoft.Windows.Update"])
            ),
        ),
        2 => (
            "read-applicability",
            "CBS",
            format!(
                "Read out cached package applicability for package: Package_for_KB{}~31bf3856ad364e35~amd64~~6.1.{}.{}, ApplicableState: {}, CurrentState:{}",
                g.range(2_000_000, 3_999_999),
                g.range(1, 9),
                g.range(0, 9),
                g.pick(&["80", "112"]),
                g.pick(&["80", "112"])
            ),
        ),
        3 => (
            "loaded-stack",
            "CBS",
            format!(
                "Loaded Servicing Stack v6.1.7601.{} with Core: C:\\Windows\\winsxs\\amd64_microsoft-windows-servicingstack_31bf3856ad364e35_6.1.7601.{}_none_{}\\cbscore.dll",
                g.range(17000, 23999),
                g.range(17000, 23999),
                g.hex(16)
            ),
        ),
        4 => (
            "sqm-initializing",
            "CBS",
            format!(
                "SQM: Initializing online with Windows opt-in: {}",
                g.pick(&["False", "True"])
            ),
        ),
        5 => (
            "sqm-cleaning",
            "CBS",
            format!(
                "SQM: Cleaning up report files older than {} days.",
                g.range(1, 30)
            ),
        ),
        6 => (
            "trustedinstaller-starting",
            "CBS",
            "Starting TrustedInstaller initialization.".to_owned(),
        ),
        7 => (
            "trustedinstaller-ending",
            "CBS",
            "Ending TrustedInstaller initialization.".to_owned(),
        ),
        8 => (
            "failed-open-package",
            "CBS",
            format!(
                "Failed to internally open package. [HRESULT = 0x{} - {}]",
                g.pick(&["800f0805", "80070002"]),
                g.pick(&["CBS_E_INVALID_PACKAGE", "ERROR_FILE_NOT_FOUND"])
            ),
        ),
        9 => (
            "unrecognized-attribute",
            "CBS",
            "Warning: Unrecognized packageExtended attribute.".to_owned(),
        ),
        _ => (
            "nonstart-checking",
            "CBS",
            "NonStart: Checking to ensure startup processing was not required.".to_owned(),
        ),
    };
    let level = if g.chance(97) { "Info" } else { "Warning" };
    (
        label,
        format!("{date}{level}                  {component}    {body}"),
    )
}

fn mac(g: &mut Gen) -> (&'static str, String) {
    let host = g.pick(&[
        "calvisitor-10-105-160-95",
        "authorMacBook-Pro",
        "calvisitor-10-105-163-202",
    ]);
    let prefix = format!("Jul {:>2} {} {host} ", g.range(1, 8), g.time());
    let which = g.weighted(&[15, 10, 10, 8, 8, 6, 6, 5, 4]);
    let (label, process, body) = match which {
        0 => (
            "arpt-sync-power",
            "kernel[0]".to_owned(),
            format!(
                "ARPT: {}.{:06}: AirPort_Brcm43xx::syncPowerState: WWEN[{}]",
                g.range(600_000, 700_000),
                g.below(1_000_000),
                g.pick(&["enabled", "disabled"])
            ),
        ),
        1 => (
            "thermal-pressure",
            format!("com.apple.CDScheduler[{}]", g.range(40, 99)),
            format!(
                "Thermal pressure state: {} Memory pressure state: {}",
                g.range(0, 2),
                g.range(0, 2)
            ),
        ),
        2 => (
            "qq-dealloc",
            format!("QQ[{}]", g.range(10000, 10999)),
            format!(
                "FA||Url||taskID[{}] dealloc",
                g.range(2_019_000_000, 2_019_999_999)
            ),
        ),
        3 => (
            "camin-wake",
            "kernel[0]".to_owned(),
            format!("AppleCamIn::systemWakeCall - messageType = 0x{}", g.hex(8)),
        ),
        4 => (
            "channel-changed",
            "kernel[0]".to_owned(),
            format!(
                "en0: channel changed to {}",
                g.pick(&["1", "6", "11", "36", "149"])
            ),
        ),
        5 => (
            "path-not-allowed",
            "com.apple.xpc.launchd[1]".to_owned(),
            format!(
                "(com.apple.xpc.launchd.domain.pid.WebContent.{}): Path not allowed in target domain: type = pid, path = {} error = 147: The specified service did not ship in the requestor's bundle, origin = {}",
                g.range(1000, 99999),
                g.path(),
                g.path()
            ),
        ),
        6 => (
            "chrome-task-role",
            format!("Google Chrome Helper[{}]", g.range(1000, 99999)),
            format!("Couldn't set task role {}", g.range(0, 9)),
        ),
        7 => (
            "mdns-transitions",
            format!("mDNSResponder[{}]", g.range(50, 99)),
            format!(
                "mDNS_DeregisterInterface: Frequent transitions for interface {} ({})",
                g.pick(&["en0", "awdl0", "utun1"]),
                g.ip()
            ),
        ),
        _ => (
            "sharingd-scanning",
            format!("sharingd[{}]", g.range(20, 99)),
            format!(
                "{}.{:03} : Scanning mode Contacts Only",
                g.time(),
                g.below(1000)
            ),
        ),
    };
    (label, format!("{prefix}{process}: {body}"))
}

fn access(g: &mut Gen) -> (&'static str, String) {
    const AGENTS: &[&str] = &[
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
        "curl/7.68.0",
        "Go-http-client/1.1",
        "python-requests/2.31.0",
    ];
    let which = g.weighted(&[50, 12, 6, 5, 3]);
    let when = format!("{:02}/Oct/2023:{} +0000", g.range(1, 30), g.time());
    let path = |g: &mut Gen| match g.below(3) {
        0 => format!("/api/v1/items/{}", g.range(1, 99999)),
        1 => format!("/static/{}.js", g.hex(8)),
        _ => format!("/search?q={}&page={}", g.user(), g.range(1, 9)),
    };
    let referer = |g: &mut Gen| {
        if g.chance(50) {
            "-".to_owned()
        } else {
            format!("https://{}/", g.host())
        }
    };
    let request = |g: &mut Gen, method: &str| {
        format!(
            "{} - {} [{when}] \"{method} {} HTTP/1.1\" {} {} \"{}\" \"{}\"",
            g.ip(),
            if g.chance(80) {
                "-".to_owned()
            } else {
                g.user()
            },
            path(g),
            g.pick(&["200", "304", "404"]),
            g.range(0, 99999),
            referer(g),
            g.pick(AGENTS)
        )
    };
    match which {
        0 => ("get", request(g, "GET")),
        1 => ("post", request(g, "POST")),
        2 => ("head", request(g, "HEAD")),
        3 => (
            "file-not-exist",
            format!(
                "[Sun Oct {:02} {} 2023] [error] [client {}] File does not exist: /var/www/html/{}",
                g.range(1, 30),
                g.time(),
                g.ip(),
                g.pick(&["favicon.ico", "robots.txt", "wp-login.php"])
            ),
        ),
        _ => (
            "directory-forbidden",
            format!(
                "[Sun Oct {:02} {} 2023] [error] [client {}] Directory index forbidden by rule: {}/",
                g.range(1, 30),
                g.time(),
                g.ip(),
                g.path()
            ),
        ),
    }
}

/// Grouping accuracy (as in Loghub): the share of lines whose predicted group holds exactly
/// the lines of their true template. `truth` and `predicted` are parallel.
pub fn grouping_accuracy<T: Eq + std::hash::Hash, P: Eq + std::hash::Hash>(
    truth: &[T],
    predicted: &[P],
) -> f64 {
    use std::collections::HashMap;
    if truth.is_empty() {
        return 1.0;
    }
    let mut by_truth: HashMap<&T, Vec<usize>> = HashMap::new();
    let mut by_pred: HashMap<&P, Vec<usize>> = HashMap::new();
    for (i, (t, p)) in truth.iter().zip(predicted).enumerate() {
        by_truth.entry(t).or_default().push(i);
        by_pred.entry(p).or_default().push(i);
    }
    let mut correct = 0;
    for lines in by_pred.values() {
        let t = &truth[lines[0]];
        if by_truth.get(t).is_some_and(|g| g == lines) {
            correct += lines.len();
        }
    }
    correct as f64 / truth.len() as f64
}
