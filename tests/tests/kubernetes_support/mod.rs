//! Rendering `deploy/kubernetes` with `kubectl kustomize`, reading it as JSON, validating it
//! with `kubernetes-validate`, and reading the workspace's packages and sources, for
//! `tests/tests/kubernetes_deploy.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::python::{python_dir, python_with};

/// The requirements file of the venv these tests use.
const REQUIREMENTS: &str = "requirements-kubernetes.txt";

/// The repository root.
pub(crate) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is inside the repository")
        .to_path_buf()
}

/// `tests/python/requirements-kubernetes.txt`.
pub(crate) fn requirements() -> PathBuf {
    python_dir().join(REQUIREMENTS)
}

fn python() -> PathBuf {
    python_with(REQUIREMENTS)
}

fn output(cmd: &mut Command, what: &str, stdin: Option<&str>) -> Output {
    use std::io::Write as _;
    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .unwrap_or_else(|e| panic!("{what}: writing stdin: {e}"));
    }
    child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn checked(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap_or_else(|e| panic!("{what}: output is not UTF-8: {e}"))
}

/// `python -m kubernetes_validate ARGS` from the venv; its stdout.
pub(crate) fn kubernetes_validate(args: &[&str]) -> String {
    let out = output(
        Command::new(python())
            .args(["-m", "kubernetes_validate"])
            .args(args),
        "kubernetes-validate",
        None,
    );
    checked(out, "kubernetes-validate")
}

/// The newest Kubernetes minor version (`1.37`) whose schemas kubernetes-validate ships.
pub(crate) fn newest_schema() -> String {
    let out = output(
        Command::new(python()).args([
            "-c",
            "import kubernetes_validate.utils as u; print(u.major_minor(u.latest_version()))",
        ]),
        "kubernetes_validate.utils.latest_version()",
        None,
    );
    checked(out, "kubernetes_validate.utils.latest_version()")
        .trim()
        .to_owned()
}

/// `1.30.0` → `1.30`.
pub(crate) fn minor(version: &str) -> String {
    version.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// A version as numbers, for comparing.
pub(crate) fn version_key(version: &str) -> Vec<u64> {
    version
        .split('.')
        .map(|p| {
            p.parse()
                .unwrap_or_else(|e| panic!("version {version}: {e}"))
        })
        .collect()
}

/// What `kubernetes-validate --strict` said about a file.
#[derive(Debug)]
pub(crate) struct Validation {
    /// Its exit status was 0.
    pub(crate) success: bool,
    /// `kind/name` of each object that passed.
    pub(crate) passed: Vec<String>,
    /// The schema version each passing object was checked against.
    pub(crate) versions: Vec<String>,
    /// Everything it printed.
    pub(crate) output: String,
}

impl Validation {
    /// The lines that are not a pass: errors, warnings (an unknown kind is only a warning, with
    /// exit status 0) and anything else.
    pub(crate) fn refused(&self) -> Vec<&str> {
        self.output
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with("INFO "))
            .collect()
    }
}

/// Validates `yaml` in strict mode against the schemas of Kubernetes `version`.
pub(crate) fn validate(yaml: &str, version: &str) -> Validation {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("rendered.yaml");
    std::fs::write(&file, yaml).expect("write the rendered manifests");
    let out = output(
        Command::new(python())
            .args(["-m", "kubernetes_validate", "--strict", "-k", version])
            .arg(&file),
        "kubernetes-validate",
        None,
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut passed = Vec::new();
    let mut versions = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line
            .strip_prefix("INFO ")
            .and_then(|l| l.split_once(" passed for resource "))
            .map(|(_, r)| r)
        {
            let (object, version) = rest
                .split_once(" against version ")
                .unwrap_or_else(|| panic!("unexpected line {line:?}"));
            passed.push(object.to_owned());
            versions.push(version.trim().to_owned());
        }
    }
    Validation {
        success: out.status.success(),
        passed,
        versions,
        output: text,
    }
}

/// One `kubectl kustomize` rendering.
#[derive(Debug)]
pub(crate) struct Render {
    /// `base`, `overlays/dev`, …
    pub(crate) name: String,
    /// The YAML as rendered.
    pub(crate) yaml: String,
    /// The objects, as JSON.
    pub(crate) objects: Vec<Value>,
}

/// Renders `deploy/kubernetes/<dir>` with `kubectl kustomize`.
pub(crate) fn render(dir: &str) -> Render {
    let path = repo().join("deploy/kubernetes").join(dir);
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(&path)
        .output()
        .unwrap_or_else(|e| {
            panic!("kubectl is required for these tests (kubectl 1.32 with kustomize v5.5): cannot run kubectl: {e}")
        });
    let yaml = checked(out, &format!("kubectl kustomize {}", path.display()));
    // PyYAML (a dependency of kubernetes-validate) reads it as JSON for the checks.
    let json = checked(
        output(
            Command::new(python()).args([
                "-c",
                "import sys, json, yaml\n\
                 json.dump([d for d in yaml.safe_load_all(sys.stdin) if d], sys.stdout)",
            ]),
            "yaml to json",
            Some(&yaml),
        ),
        "yaml to json",
    );
    let objects: Vec<Value> =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("{dir}: rendered JSON: {e}"));
    Render {
        name: dir.to_owned(),
        yaml,
        objects,
    }
}

impl Render {
    /// The objects of one kind.
    pub(crate) fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects.iter().filter(move |o| o["kind"] == kind)
    }

    /// The object of `kind` named `name`.
    pub(crate) fn find(&self, kind: &str, name: &str) -> Option<&Value> {
        self.objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
    }

    /// `("Kind/name", pod template)` of every workload.
    pub(crate) fn pod_templates(&self) -> Vec<(String, &Value)> {
        self.objects
            .iter()
            .filter(|o| {
                ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"]
                    .contains(&o["kind"].as_str().unwrap_or_default())
            })
            .map(|o| {
                (
                    format!(
                        "{}/{}",
                        o["kind"].as_str().unwrap_or_default(),
                        o["metadata"]["name"].as_str().unwrap_or_default()
                    ),
                    &o["spec"]["template"],
                )
            })
            .collect()
    }

    /// The names of a StatefulSet's volume claim templates (none for other workloads).
    pub(crate) fn claim_templates(&self, workload: &str) -> Vec<String> {
        let Some(("StatefulSet", name)) = workload.split_once('/') else {
            return Vec::new();
        };
        self.find("StatefulSet", name)
            .and_then(|s| s["spec"]["volumeClaimTemplates"].as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|t| t["metadata"]["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The text of aiops's topology (ConfigMap `aiops-topology`, key `aiops.toml`).
    pub(crate) fn topology_text(&self) -> String {
        self.find("ConfigMap", "aiops-topology")
            .and_then(|c| c["data"]["aiops.toml"].as_str())
            .unwrap_or_else(|| panic!("{}: no ConfigMap aiops-topology with aiops.toml", self.name))
            .to_owned()
    }

    /// aiops's topology, as JSON.
    pub(crate) fn topology(&self) -> Value {
        let table: toml::Table = toml::from_str(&self.topology_text())
            .unwrap_or_else(|e| panic!("{}: aiops.toml: {e}", self.name));
        serde_json::to_value(table).expect("TOML as JSON")
    }
}

/// A package of the workspace.
#[derive(Debug)]
pub(crate) struct Package {
    /// Its name.
    pub(crate) name: String,
    /// Its folder.
    pub(crate) dir: PathBuf,
    /// Its binaries.
    pub(crate) bins: Vec<String>,
    /// The workspace packages it depends on (normal dependencies).
    pub(crate) path_deps: BTreeSet<String>,
    /// Its registry dependencies (package names).
    pub(crate) registry_deps: BTreeSet<String>,
}

/// The workspace: members, packages and what their sources say.
#[derive(Debug)]
pub(crate) struct Workspace {
    /// Member folders, relative to the root.
    pub(crate) members: Vec<String>,
    /// `[workspace.package] rust-version`.
    pub(crate) rust_version: String,
    packages: Vec<Package>,
}

fn read_toml(path: &Path) -> toml::Table {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `.rs` file below `dir`, concatenated.
fn sources_under(dir: &Path) -> String {
    let mut out = String::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(std::fs::DirEntry::path);
    for e in entries {
        let p = e.path();
        if p.is_dir() {
            out.push_str(&sources_under(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push_str(&std::fs::read_to_string(&p).unwrap_or_default());
            out.push('\n');
        }
    }
    out
}

impl Workspace {
    /// Reads the root `Cargo.toml` and every member's.
    pub(crate) fn load() -> Self {
        let root = repo();
        let manifest = read_toml(&root.join("Cargo.toml"));
        let ws = manifest["workspace"].as_table().expect("[workspace]");
        let members: Vec<String> = ws["members"]
            .as_array()
            .expect("members")
            .iter()
            .map(|m| m.as_str().expect("member").to_owned())
            .collect();
        let rust_version = ws["package"]["rust-version"]
            .as_str()
            .expect("rust-version")
            .to_owned();
        let ws_deps = ws
            .get("dependencies")
            .and_then(toml::Value::as_table)
            .cloned()
            .unwrap_or_default();
        // Package names by folder, to resolve path dependencies.
        let names: BTreeMap<PathBuf, String> = members
            .iter()
            .map(|m| {
                let dir = root.join(m);
                let t = read_toml(&dir.join("Cargo.toml"));
                let name = t["package"]["name"]
                    .as_str()
                    .expect("package.name")
                    .to_owned();
                (std::fs::canonicalize(&dir).unwrap_or(dir), name)
            })
            .collect();
        let packages = members
            .iter()
            .map(|m| {
                let dir = root.join(m);
                let t = read_toml(&dir.join("Cargo.toml"));
                let name = t["package"]["name"]
                    .as_str()
                    .expect("package.name")
                    .to_owned();
                let mut bins: Vec<String> = t
                    .get("bin")
                    .and_then(toml::Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|b| b.get("name").and_then(toml::Value::as_str))
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default();
                let explicit_main = t
                    .get("bin")
                    .and_then(toml::Value::as_array)
                    .is_some_and(|a| {
                        a.iter().any(|b| {
                            b.get("path").and_then(toml::Value::as_str) == Some("src/main.rs")
                        })
                    });
                if dir.join("src/main.rs").is_file() && !explicit_main {
                    bins.push(name.clone());
                }
                if let Ok(rd) = std::fs::read_dir(dir.join("src/bin")) {
                    for e in rd.filter_map(Result::ok) {
                        let p = e.path();
                        if p.extension().is_some_and(|x| x == "rs") {
                            let stem = p.file_stem().expect("stem").to_string_lossy().into_owned();
                            if !bins.contains(&stem) {
                                bins.push(stem);
                            }
                        }
                    }
                }
                let mut path_deps = BTreeSet::new();
                let mut registry_deps = BTreeSet::new();
                let deps = t
                    .get("dependencies")
                    .and_then(toml::Value::as_table)
                    .cloned()
                    .unwrap_or_default();
                for (key, spec) in deps {
                    let inherited =
                        spec.get("workspace").and_then(toml::Value::as_bool) == Some(true);
                    let spec = if inherited {
                        ws_deps.get(&key).cloned().unwrap_or(spec)
                    } else {
                        spec
                    };
                    let base = if inherited { root.clone() } else { dir.clone() };
                    match spec.get("path").and_then(toml::Value::as_str) {
                        Some(p) => {
                            let target = base.join(p);
                            let target = std::fs::canonicalize(&target).unwrap_or(target);
                            let dep = names.get(&target).unwrap_or_else(|| {
                                panic!("{name}: path dependency {key} is not a member")
                            });
                            path_deps.insert(dep.clone());
                        }
                        None => {
                            let pkg = spec
                                .get("package")
                                .and_then(toml::Value::as_str)
                                .unwrap_or(&key);
                            registry_deps.insert(pkg.to_owned());
                        }
                    }
                }
                Package {
                    name,
                    dir,
                    bins,
                    path_deps,
                    registry_deps,
                }
            })
            .collect();
        Self {
            members,
            rust_version,
            packages,
        }
    }

    /// The package named `name`.
    pub(crate) fn package(&self, name: &str) -> Option<&Package> {
        self.packages.iter().find(|p| p.name == name)
    }

    /// `pkg` and the workspace packages it depends on, transitively.
    pub(crate) fn with_path_deps<'a>(&'a self, pkg: &'a Package) -> Vec<&'a Package> {
        let mut out = vec![pkg];
        let mut i = 0;
        while i < out.len() {
            for dep in &out[i].path_deps {
                let p = self.package(dep).expect("path dependency");
                if !out.iter().any(|q| q.name == p.name) {
                    out.push(p);
                }
            }
            i += 1;
        }
        out
    }

    /// The Rust sources (`src/`) of `pkgs`, concatenated.
    pub(crate) fn read_sources(&self, pkgs: &[&Package]) -> String {
        pkgs.iter()
            .map(|p| sources_under(&p.dir.join("src")))
            .collect()
    }

    fn chassis_file(name: &str) -> String {
        let p = repo().join("chassis/src").join(name);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    /// The body of `impl Default for ChassisConfig`.
    fn chassis_defaults() -> String {
        let text = Self::chassis_file("config.rs");
        let start = text
            .find("impl Default for ChassisConfig")
            .expect("impl Default for ChassisConfig");
        let body = &text[start..];
        body[..body.find("\n}\n").expect("end of impl")].to_owned()
    }

    /// The chassis's default port (`port: 8080` in `ChassisConfig::default`).
    pub(crate) fn chassis_default_port(&self) -> u16 {
        let d = Self::chassis_defaults();
        d.lines()
            .find_map(|l| l.trim().strip_prefix("port: "))
            .and_then(|v| v.trim_end_matches(',').parse().ok())
            .expect("port: <n> in ChassisConfig::default")
    }

    /// The chassis's default bind address (`host: "…"` in `ChassisConfig::default`).
    pub(crate) fn chassis_default_host(&self) -> String {
        let d = Self::chassis_defaults();
        d.lines()
            .find_map(|l| l.trim().strip_prefix("host: \""))
            .and_then(|v| v.split('"').next())
            .expect("host: \"…\" in ChassisConfig::default")
            .to_owned()
    }

    /// The top-level chassis keys: the fields of `ChassisConfig`.
    pub(crate) fn chassis_config_fields(&self) -> BTreeSet<String> {
        let text = Self::chassis_file("config.rs");
        let start = text
            .find("pub struct ChassisConfig {")
            .expect("struct ChassisConfig");
        let body = &text[start..];
        let body = &body[..body.find("\n}\n").expect("end of struct")];
        body.lines()
            .filter_map(|l| l.trim().strip_prefix("pub "))
            .filter_map(|l| l.split_once(':').map(|(f, _)| f.trim().to_owned()))
            .filter(|f| !f.contains(' '))
            .collect()
    }

    /// aiops's default `[platform] listen` (`SocketAddr::from(([127, 0, 0, 1], 4318))`).
    pub(crate) fn aiops_default_listen(&self) -> String {
        let p = repo().join("aiops-platform/src/config.rs");
        let text = std::fs::read_to_string(&p).expect("aiops-platform/src/config.rs");
        let line = text
            .lines()
            .find(|l| l.trim().starts_with("listen: SocketAddr::from(("))
            .expect("listen: SocketAddr::from(…) in PlatformConfig::default");
        let inner = line
            .split("((")
            .nth(1)
            .and_then(|s| s.split("))").next())
            .expect("((ip], port))");
        let (ip, port) = inner.split_once("],").expect("[ip], port");
        let ip: Vec<&str> = ip
            .trim_start_matches('[')
            .split(',')
            .map(str::trim)
            .collect();
        format!("{}:{}", ip.join("."), port.trim())
    }

    /// Whether `pkg` reads the environment variable `var`, by its exact name (`Err` says why
    /// not): `AIODS_*` through the chassis's layered configuration, anything else as a string
    /// literal in its sources, the workspace packages it uses, or their registry dependencies.
    pub(crate) fn reads_env(
        &self,
        pkg: &Package,
        chassis: &Package,
        chassis_fields: &BTreeSet<String>,
        var: &str,
    ) -> Result<(), String> {
        let set = self.with_path_deps(pkg);
        if !set.iter().any(|p| p.name == chassis.name) && var.starts_with("AIODS_") {
            return Err("it does not use the chassis configuration".into());
        }
        let sources = self.read_sources(&set);
        let declares = |field: &str| {
            sources.lines().any(|l| {
                let l = l.trim();
                l.strip_prefix("pub ")
                    .unwrap_or(l)
                    .starts_with(&format!("{field}:"))
            })
        };
        if let Some(key) = var.strip_prefix("AIODS_") {
            let key = key.to_lowercase();
            let parts: Vec<&str> = key.split("__").collect();
            return match parts.as_slice() {
                [top] if chassis_fields.contains(*top) => Ok(()),
                [top] => Err(format!("`{top}` is not a field of ChassisConfig")),
                ["upstreams", name] => {
                    let own = self.read_sources(&[pkg]);
                    if own.contains(&format!("\"{name}\"")) {
                        Ok(())
                    } else {
                        Err(format!("its sources never name the upstream \"{name}\""))
                    }
                }
                [section, field] if chassis_fields.contains(*section) => {
                    let chassis_src = self.read_sources(&[chassis]);
                    if chassis_src
                        .lines()
                        .any(|l| l.trim().starts_with(&format!("pub {field}:")))
                    {
                        Ok(())
                    } else {
                        Err(format!("the chassis's `{section}` has no field `{field}`"))
                    }
                }
                [section, field] => {
                    let reads_section = sources
                        .contains(&format!("section_or_default(\"{section}\")"))
                        || sources.contains(&format!("section(\"{section}\")"));
                    if !reads_section {
                        Err(format!("no section(\"{section}\") is read"))
                    } else if !declares(field) {
                        Err(format!("no field `{field}` is declared"))
                    } else {
                        Ok(())
                    }
                }
                _ => Err("nested deeper than section__key".into()),
            };
        }
        let literal = format!("\"{var}\"");
        if sources.contains(&literal) {
            return Ok(());
        }
        let registry: BTreeSet<&String> = set.iter().flat_map(|p| &p.registry_deps).collect();
        for dep in registry {
            for dir in registry_sources(dep) {
                if sources_under(&dir.join("src")).contains(&literal) {
                    return Ok(());
                }
            }
        }
        Err(format!(
            "{literal} is in neither its sources, the workspace packages it uses, nor their registry dependencies"
        ))
    }
}

/// The unpacked sources of registry package `name`, at the versions Cargo.lock holds.
fn registry_sources(name: &str) -> Vec<PathBuf> {
    let lock = read_toml(&repo().join("Cargo.lock"));
    let versions: Vec<String> = lock["package"]
        .as_array()
        .expect("[[package]]")
        .iter()
        .filter(|p| p.get("name").and_then(toml::Value::as_str) == Some(name))
        .filter_map(|p| {
            p.get("version")
                .and_then(toml::Value::as_str)
                .map(str::to_owned)
        })
        .collect();
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .expect("CARGO_HOME or HOME");
    let Ok(indexes) = std::fs::read_dir(home.join("registry/src")) else {
        return Vec::new();
    };
    let indexes: Vec<PathBuf> = indexes.filter_map(Result::ok).map(|e| e.path()).collect();
    versions
        .iter()
        .flat_map(|v| indexes.iter().map(move |i| i.join(format!("{name}-{v}"))))
        .filter(|d| d.is_dir())
        .collect()
}
