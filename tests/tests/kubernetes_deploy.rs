//! `deploy/kubernetes` and `deploy/docker`, checked offline (no API server, no Docker daemon
//! runs here):
//!
//! - every overlay (and the base) rendered by `kubectl kustomize` validates against the
//!   Kubernetes JSON schemas in strict mode (`kubernetes-validate`, pinned in
//!   `tests/python/requirements-kubernetes.txt`) for Kubernetes 1.30 and for the newest schema
//!   the package ships, every object counted — and a broken render is refused;
//! - what the Dockerfile, the image table of `deploy/kubernetes/e2e-kind.sh` and the rendered
//!   manifests name exists in the workspace and agrees: packages, binaries, copied paths, ports,
//!   environment variables (each one the code reads, by its exact name), URLs (each one a
//!   Service that exists, on a port it has), Secrets, ConfigMaps, volumes, and the labels,
//!   selectors and annotations of the conventions (docs/kubernetes.md);
//! - on a real PostgreSQL (Debian's `initdb`/`pg_ctl`), the Postgres init script makes the
//!   databases, and each service's database URL, expanded as the kubelet does, connects.
//!
//! `kubectl`, `python3 -m venv` and PostgreSQL are required: without them the tests fail,
//! naming what is missing.

#[path = "platform_support/python.rs"]
#[allow(dead_code, unreachable_pub, missing_docs)]
mod python;

mod kubernetes_support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use kubernetes_support::{
    Render, Workspace, kubernetes_validate, newest_schema, render, repo, validate,
};
use serde_json::Value;

/// The overlays the repository ships (each is also found on disk, see `overlays_on_disk`).
const OVERLAYS: [&str; 2] = ["dev", "production"];

/// The five food-delivery services, as Deployments, Services and topology entries.
const FOOD_DELIVERY: [&str; 5] = [
    "order-service",
    "consumer-service",
    "kitchen-service",
    "accounting-service",
    "notification-service",
];

fn overlays_on_disk() -> Vec<String> {
    let dir = repo().join("deploy/kubernetes/overlays");
    let mut found: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .filter(|e| e.path().join("kustomization.yaml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    let mut expected: Vec<String> = OVERLAYS.iter().map(|s| (*s).to_owned()).collect();
    expected.sort();
    assert_eq!(found, expected, "overlays in {}", dir.display());
    found
}

/// The base and every overlay, rendered once for all the tests of this file.
fn all_renders() -> &'static [Render] {
    static RENDERS: OnceLock<Vec<Render>> = OnceLock::new();
    RENDERS.get_or_init(|| {
        let mut renders = vec![render("base")];
        renders.extend(
            overlays_on_disk()
                .iter()
                .map(|o| render(&format!("overlays/{o}"))),
        );
        renders
    })
}

// ---------------------------------------------------------------------------------------------
// Schema validation

#[test]
fn every_overlay_validates_in_strict_mode_on_kubernetes_1_30_and_the_newest_schema() {
    let newest = newest_schema();
    assert!(
        kubernetes_support::version_key(&newest) > kubernetes_support::version_key("1.30"),
        "kubernetes-validate's newest schema is {newest}, expected one newer than 1.30"
    );
    for r in all_renders() {
        assert!(!r.objects.is_empty(), "{} renders nothing", r.name);
        for version in ["1.30.0".to_owned(), format!("{newest}.0")] {
            let v = validate(&r.yaml, &version);
            assert!(
                v.refused().is_empty() && v.success,
                "{} against Kubernetes {version}:\n{}",
                r.name,
                v.output
            );
            // Every object was checked against a schema of that minor version: an object of
            // an unknown kind is only a warning (exit 0) for kubernetes-validate.
            let minor = kubernetes_support::minor(&version);
            let mut passed = v.passed.clone();
            passed.sort();
            let mut rendered: Vec<String> = r
                .objects
                .iter()
                .map(|o| format!("{}/{}", kind(o).to_lowercase(), name(o)))
                .collect();
            rendered.sort();
            assert_eq!(passed, rendered, "{}: objects validated", r.name);
            assert!(
                v.versions.iter().all(|used| *used == minor),
                "{}: validated against {:?}, asked {minor}",
                r.name,
                v.versions
            );
            eprintln!(
                "{}: {} objects valid (strict) against Kubernetes {minor}",
                r.name,
                passed.len()
            );
        }
    }
}

/// Pod-level `resources`, injected before a pod's own `securityContext` (six spaces deep in a
/// Deployment's rendering; a container's is deeper).
const NEWER_FIELD: (&str, &str) = (
    "\n      securityContext:\n",
    "\n      resources:\n        limits:\n          memory: 1Gi\n      securityContext:\n",
);

#[test]
fn a_broken_manifest_is_refused() {
    let dev = render("overlays/dev");
    // The unchanged render passes through the same check, so each refusal below is the
    // injected fault's.
    let control = validate(&dev.yaml, "1.30.0");
    assert!(
        control.success && control.refused().is_empty(),
        "{}",
        control.output
    );

    let cases = [
        // An unknown field: only strict mode refuses it.
        (
            "misspelled field",
            dev.yaml.replacen("livenessProbe:", "livenesProbe:", 1),
            "livenesProbe",
        ),
        // A value of the wrong type.
        (
            "wrong type",
            dev.yaml.replacen("replicas: 1", "replicas: one", 1),
            "one",
        ),
        // An unknown kind has no schema: kubernetes-validate warns and exits 0; it still
        // counts as refused here.
        (
            "unknown kind",
            dev.yaml.replacen("kind: Deployment", "kind: Deploymnet", 1),
            "Deploymnet",
        ),
        // A field that does not exist in Kubernetes 1.30's schema.
        // Pod-level resources came with Kubernetes 1.32: not in 1.30's schema.
        (
            "a field newer than 1.30",
            dev.yaml.replacen(NEWER_FIELD.0, NEWER_FIELD.1, 1),
            "resources",
        ),
    ];
    for (what, broken, needle) in cases {
        assert_ne!(broken, dev.yaml, "{what}: the fault was not injected");
        let v = validate(&broken, "1.30.0");
        let refused = v.refused();
        assert!(
            !refused.is_empty(),
            "{what}: accepted by kubernetes-validate:\n{}",
            v.output
        );
        assert!(
            refused.iter().any(|line| line.contains(needle)),
            "{what}: refused, but not for {needle:?}:\n{}",
            refused.join("\n")
        );
        eprintln!("{what}: refused: {}", refused[0]);
    }
    // …and the same field passes the newest schema: the 1.30 run is what refused it.
    let newer = dev.yaml.replacen(NEWER_FIELD.0, NEWER_FIELD.1, 1);
    let v = validate(&newer, &format!("{}.0", newest_schema()));
    assert!(v.success && v.refused().is_empty(), "{}", v.output);
}

// ---------------------------------------------------------------------------------------------
// Images: the Dockerfile and the image table

/// One row of `images=( … )` in `deploy/kubernetes/e2e-kind.sh`.
#[derive(Debug, Clone)]
struct Image {
    image: String,
    package: String,
    bin: String,
    port: u16,
}

fn image_table() -> Vec<Image> {
    let path = repo().join("deploy/kubernetes/e2e-kind.sh");
    let text = std::fs::read_to_string(&path).expect("deploy/kubernetes/e2e-kind.sh");
    let start = text
        .find("images=(")
        .expect("an images=( … ) table in e2e-kind.sh");
    let end = start + text[start..].find("\n)").expect("the end of images=( … )");
    let rows: Vec<Image> = text[start + "images=(".len()..end]
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let fields: Vec<&str> = l.trim_matches('"').split_whitespace().collect();
            assert_eq!(
                fields.len(),
                4,
                "image row {l:?}: image package binary port"
            );
            Image {
                image: fields[0].to_owned(),
                package: fields[1].to_owned(),
                bin: fields[2].to_owned(),
                port: fields[3]
                    .parse()
                    .unwrap_or_else(|e| panic!("image row {l:?}: port: {e}")),
            }
        })
        .collect();
    assert!(!rows.is_empty(), "the image table is empty");
    rows
}

/// The instructions of the Dockerfile, continuation lines joined.
fn dockerfile() -> Vec<(String, String)> {
    let path = repo().join("deploy/docker/Dockerfile");
    let text = std::fs::read_to_string(&path).expect("deploy/docker/Dockerfile");
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        let (op, rest) = current.split_once(' ').unwrap_or((&current, ""));
        out.push((op.to_uppercase(), rest.trim().to_owned()));
        current.clear();
    }
    out
}

#[test]
fn the_dockerfile_names_paths_packages_and_binaries_that_exist() {
    let ws = Workspace::load();
    let instructions = dockerfile();

    // The builder's Rust is at least the workspace's rust-version.
    let from: Vec<&String> = instructions
        .iter()
        .filter(|(op, _)| op == "FROM")
        .map(|(_, rest)| rest)
        .collect();
    assert_eq!(from.len(), 2, "a builder and a runtime stage: {from:?}");
    let rust = from[0]
        .strip_prefix("rust:")
        .and_then(|r| r.split(['-', ' ']).next())
        .unwrap_or_else(|| panic!("the builder is not a rust: image: {}", from[0]));
    assert!(
        kubernetes_support::version_key(rust) >= kubernetes_support::version_key(&ws.rust_version),
        "builder rust:{rust} is older than the workspace's rust-version {}",
        ws.rust_version
    );
    assert!(
        from[1].contains("distroless") || from[1].contains("-slim"),
        "runtime base {} is not minimal",
        from[1]
    );

    // Every COPY from the build context exists and is not excluded by .dockerignore.
    let ignore: Vec<String> = std::fs::read_to_string(repo().join(".dockerignore"))
        .expect(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_start_matches("**/").trim_end_matches('/').to_owned())
        .collect();
    let mut copied = Vec::new();
    for (op, rest) in &instructions {
        if op != "COPY" || rest.starts_with("--from") {
            continue;
        }
        let parts: Vec<&str> = rest
            .split_whitespace()
            .filter(|p| !p.starts_with("--"))
            .collect();
        assert!(parts.len() >= 2, "COPY {rest}");
        for src in &parts[..parts.len() - 1] {
            assert!(
                repo().join(src).exists(),
                "COPY {src}: no such path in the repository"
            );
            assert!(
                !ignore
                    .iter()
                    .any(|i| i == src || src.starts_with(&format!("{i}/"))),
                "COPY {src} is excluded by .dockerignore"
            );
            copied.push((*src).to_owned());
        }
    }
    // cargo loads the whole workspace: every member must be in the build context.
    for member in &ws.members {
        assert!(
            copied
                .iter()
                .any(|c| member == c || member.starts_with(&format!("{c}/"))),
            "workspace member {member} is not copied into the builder"
        );
    }
    for lock in ["Cargo.toml", "Cargo.lock"] {
        assert!(copied.iter().any(|c| c == lock), "{lock} is not copied");
    }

    // ARG PACKAGE / BIN build one binary of one package; the runtime runs as non-root and
    // exposes the port; the chassis's default port is the default.
    let run = instructions
        .iter()
        .find(|(op, rest)| op == "RUN" && rest.contains("cargo build"))
        .map(|(_, rest)| rest.clone())
        .expect("a RUN cargo build");
    for needle in [
        "--locked",
        "-p \"$PACKAGE\"",
        "--bin \"$BIN\"",
        "target/release/$BIN",
    ] {
        assert!(run.contains(needle), "cargo build without {needle}: {run}");
    }
    let user = instructions
        .iter()
        .rev()
        .find(|(op, _)| op == "USER")
        .map(|(_, u)| u.clone())
        .expect("a USER");
    let uid = user.split(':').next().unwrap_or("");
    assert!(
        uid.parse::<u32>().is_ok_and(|u| u != 0),
        "USER {user} is not a non-root uid"
    );
    let port_default = instructions
        .iter()
        .find_map(|(op, rest)| (op == "ARG").then(|| rest.strip_prefix("PORT=")).flatten())
        .expect("ARG PORT=<default>");
    assert_eq!(
        port_default.parse::<u16>().ok(),
        Some(ws.chassis_default_port()),
        "ARG PORT default vs the chassis's default port"
    );
    assert!(
        instructions
            .iter()
            .any(|(op, rest)| op == "EXPOSE" && rest == "${PORT}"),
        "EXPOSE ${{PORT}}"
    );

    // Every image row names a package of the workspace and one of its binaries.
    for img in image_table() {
        let pkg = ws.package(&img.package).unwrap_or_else(|| {
            panic!(
                "image {}: no package {} in the workspace",
                img.image, img.package
            )
        });
        assert!(
            pkg.bins.contains(&img.bin),
            "image {}: package {} has no binary {} (it has {:?})",
            img.image,
            img.package,
            img.bin,
            pkg.bins
        );
    }
}

#[test]
fn every_image_in_the_manifests_is_built_from_the_table_and_runs_its_binary() {
    let table = image_table();
    for r in all_renders() {
        let mut used = BTreeSet::new();
        for (workload, pod) in r.pod_templates() {
            for c in containers(pod) {
                let image = c["image"].as_str().unwrap_or_default();
                let Some(repo_name) = image.strip_prefix("aiods/") else {
                    continue;
                };
                let (repo_name, tag) = repo_name.split_once(':').unwrap_or((repo_name, ""));
                assert!(
                    !tag.is_empty() && tag != "latest",
                    "{}: {workload}: image {image} has no fixed tag",
                    r.name
                );
                let row = table
                    .iter()
                    .find(|i| i.image == repo_name)
                    .unwrap_or_else(|| {
                        panic!("{}: {workload}: image {image} is not in the table", r.name)
                    });
                let command: Vec<&str> = c["command"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                assert_eq!(
                    command.first().copied(),
                    Some(format!("/usr/local/bin/{}", row.bin).as_str()),
                    "{}: {workload}: command",
                    r.name
                );
                let ports = container_ports(c);
                assert_eq!(
                    ports.values().copied().collect::<Vec<_>>(),
                    vec![row.port],
                    "{}: {workload}: container ports vs the image table",
                    r.name
                );
                used.insert(repo_name.to_owned());
            }
        }
        let all: BTreeSet<String> = table.iter().map(|i| i.image.clone()).collect();
        assert_eq!(used, all, "{}: images used vs the image table", r.name);
    }
}

// ---------------------------------------------------------------------------------------------
// Ports

#[test]
fn ports_and_probes_match_what_each_program_listens_on() {
    let ws = Workspace::load();
    let table = image_table();
    let chassis_routes = ws.read_sources(&[ws.package("aiods-chassis").expect("chassis")]);
    let aiops_pkg = ws.package("aiops-platform").expect("aiops-platform");
    let aiops_routes = ws.read_sources(&[aiops_pkg]);
    for r in all_renders() {
        let topology = r.topology();
        for (workload, pod) in r.pod_templates() {
            for c in containers(pod) {
                let image = c["image"].as_str().unwrap_or_default();
                let row = table
                    .iter()
                    .find(|i| image.starts_with(&format!("aiods/{}:", i.image)));
                let ports = container_ports(c);
                // Where the program listens, from its own configuration.
                let listen: Option<(String, u16)> = match row {
                    Some(row) if row.package == "aiops-platform" => {
                        let listen = topology["platform"]["listen"]
                            .as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| ws.aiops_default_listen());
                        let (host, port) = listen.rsplit_once(':').expect("host:port");
                        Some((host.to_owned(), port.parse().expect("listen port")))
                    }
                    Some(row) => {
                        let pkg = ws.package(&row.package).expect("package");
                        assert!(
                            pkg.path_deps.contains("aiods-chassis"),
                            "{} does not use the chassis",
                            row.package
                        );
                        let env = env_values(c);
                        let port = env
                            .get("AIODS_PORT")
                            .map(|p| p.parse().expect("AIODS_PORT"))
                            .unwrap_or_else(|| ws.chassis_default_port());
                        let host = env
                            .get("AIODS_HOST")
                            .cloned()
                            .unwrap_or_else(|| ws.chassis_default_host());
                        Some((host, port))
                    }
                    None => None,
                };
                if let Some((host, port)) = &listen {
                    assert!(
                        host == "0.0.0.0" || host == "::" || host == "[::]",
                        "{}: {workload}: listens on {host}, unreachable from other pods",
                        r.name
                    );
                    assert_eq!(
                        ports.values().copied().collect::<Vec<_>>(),
                        vec![*port],
                        "{}: {workload}: containerPort vs the port it listens on",
                        r.name
                    );
                }
                // Probes: on a declared port, and on an endpoint the program serves.
                for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
                    let p = &c[probe];
                    assert!(
                        p.is_object(),
                        "{}: {workload}/{}: no {probe}",
                        r.name,
                        c["name"]
                    );
                    if let Some(get) = p.get("httpGet") {
                        let port = resolve_port(&get["port"], &ports).unwrap_or_else(|| {
                            panic!(
                                "{}: {workload}: {probe} port {} is not declared",
                                r.name, get["port"]
                            )
                        });
                        if let Some((_, listen)) = &listen {
                            assert_eq!(port, *listen, "{}: {workload}: {probe} port", r.name);
                        }
                        let path = get["path"].as_str().unwrap_or_default();
                        let routes = if row.is_some_and(|r| r.package == "aiops-platform") {
                            &aiops_routes
                        } else {
                            &chassis_routes
                        };
                        assert!(
                            routes.contains(&format!("\"{path}\"")),
                            "{}: {workload}: {probe} path {path} is not a route of the program",
                            r.name
                        );
                    }
                }
                let expected_probe_paths = [
                    ("livenessProbe", "/health/live"),
                    ("readinessProbe", "/health/ready"),
                ];
                if row.is_some() {
                    for (probe, path) in expected_probe_paths {
                        assert_eq!(
                            c[probe]["httpGet"]["path"].as_str(),
                            Some(path),
                            "{}: {workload}: {probe}",
                            r.name
                        );
                    }
                }
            }
        }
        // Every Service's targetPort is a port of every pod it selects.
        for svc in r.of_kind("Service") {
            let selector = labels(&svc["spec"]["selector"]);
            let selected: Vec<(String, &Value)> = r
                .pod_templates()
                .into_iter()
                .filter(|(_, pod)| is_subset(&selector, &labels(&pod["metadata"]["labels"])))
                .collect();
            assert!(
                !selected.is_empty(),
                "{}: Service {} selects no pod template",
                r.name,
                name(svc)
            );
            for port in svc["spec"]["ports"].as_array().expect("ports") {
                for (workload, pod) in &selected {
                    let declared: BTreeMap<String, u16> =
                        containers(pod).flat_map(container_ports).collect();
                    assert!(
                        resolve_port(&port["targetPort"], &declared).is_some(),
                        "{}: Service {} targetPort {} is not a port of {workload}",
                        r.name,
                        name(svc),
                        port["targetPort"]
                    );
                }
            }
        }
        // The topology's Kubernetes services name Deployments that exist, on their port.
        let services = topology["service"].as_array().cloned().unwrap_or_default();
        let names: BTreeSet<&str> = services.iter().filter_map(|s| s["name"].as_str()).collect();
        assert_eq!(
            names,
            FOOD_DELIVERY.iter().copied().collect(),
            "{}: services in aiops's topology",
            r.name
        );
        for s in &services {
            let k = &s["kubernetes"];
            let ns = k["namespace"].as_str().expect("kubernetes.namespace");
            let deployment = k["deployment"].as_str().expect("kubernetes.deployment");
            let d = r.find("Deployment", deployment).unwrap_or_else(|| {
                panic!(
                    "{}: topology names a missing Deployment {deployment}",
                    r.name
                )
            });
            assert_eq!(namespace(d), ns, "{}: {deployment}'s namespace", r.name);
            let port = k["port"].as_i64().expect("kubernetes.port");
            let declared: BTreeMap<String, u16> = containers(&d["spec"]["template"])
                .flat_map(container_ports)
                .collect();
            assert!(
                declared.values().any(|p| i64::from(*p) == port),
                "{}: topology port {port} of {deployment} vs its containerPorts {declared:?}",
                r.name
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Environment

/// Variables the official postgres image reads (its documentation, "Environment Variables").
const POSTGRES_IMAGE_ENV: [&str; 3] = ["POSTGRES_USER", "POSTGRES_PASSWORD", "PGDATA"];

#[test]
fn every_environment_variable_is_one_the_code_reads() {
    let ws = Workspace::load();
    let table = image_table();
    let chassis = ws.package("aiods-chassis").expect("chassis");
    let chassis_fields = ws.chassis_config_fields();
    for r in all_renders() {
        for (workload, pod) in r.pod_templates() {
            let init = pod["spec"]["initContainers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for c in containers(pod).chain(init.iter()) {
                let image = c["image"].as_str().unwrap_or_default();
                let env = c["env"].as_array().cloned().unwrap_or_default();
                let names: Vec<String> = env
                    .iter()
                    .map(|e| e["name"].as_str().expect("env name").to_owned())
                    .collect();
                let unique: BTreeSet<&String> = names.iter().collect();
                assert_eq!(
                    unique.len(),
                    names.len(),
                    "{}: {workload}: duplicate env {names:?}",
                    r.name
                );
                // $(VAR) expands only to a variable defined earlier in the same list.
                for (i, e) in env.iter().enumerate() {
                    for var in dependent_vars(e["value"].as_str().unwrap_or_default()) {
                        assert!(
                            names[..i].contains(&var),
                            "{}: {workload}: {} uses $({var}) before it is defined",
                            r.name,
                            names[i]
                        );
                    }
                }
                let referenced: BTreeSet<String> = env
                    .iter()
                    .flat_map(|e| dependent_vars(e["value"].as_str().unwrap_or_default()))
                    .collect();
                let script: String = ["command", "args"]
                    .iter()
                    .flat_map(|k| c[*k].as_array().cloned().unwrap_or_default())
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect::<Vec<_>>()
                    .join("\n");
                let row = table
                    .iter()
                    .find(|i| image.starts_with(&format!("aiods/{}:", i.image)));
                for var in &names {
                    if referenced.contains(var) {
                        continue; // set to build another variable's value
                    }
                    match row {
                        Some(row) => {
                            let pkg = ws.package(&row.package).expect("package");
                            if let Err(why) = ws.reads_env(pkg, chassis, &chassis_fields, var) {
                                panic!(
                                    "{}: {workload}: {var} is not read by {}: {why}",
                                    r.name, row.package
                                );
                            }
                        }
                        None if image.starts_with("postgres:") => assert!(
                            POSTGRES_IMAGE_ENV.contains(&var.as_str()),
                            "{}: {workload}: {var} is not a variable of the postgres image",
                            r.name
                        ),
                        None => assert!(
                            script.contains(&format!("${var}"))
                                || script.contains(&format!("${{{var}}}")),
                            "{}: {workload}: {var} is not used by the container's own script",
                            r.name
                        ),
                    }
                }
            }
        }
    }
}

#[test]
fn secrets_config_maps_and_volumes_referenced_exist() {
    for r in all_renders() {
        let production = r.name.ends_with("production");
        // No placeholder credential reaches production: its Secrets are created beforehand.
        for s in r.of_kind("Secret") {
            assert!(
                !production,
                "{}: Secret {} is rendered; production creates its Secrets out of band",
                r.name,
                name(s)
            );
            assert_eq!(
                s["metadata"]["annotations"]["aiods.dev/placeholder"].as_str(),
                Some("true"),
                "{}: Secret {} is not marked as a placeholder",
                r.name,
                name(s)
            );
        }
        for (workload, pod) in r.pod_templates() {
            let init = pod["spec"]["initContainers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for c in containers(pod).chain(init.iter()) {
                for e in c["env"].as_array().cloned().unwrap_or_default() {
                    let Some(sk) = e.get("valueFrom").and_then(|v| v.get("secretKeyRef")) else {
                        continue;
                    };
                    let (secret, key) = (
                        sk["name"].as_str().expect("name"),
                        sk["key"].as_str().expect("key"),
                    );
                    match r.find("Secret", secret) {
                        Some(s) => assert!(
                            s["stringData"].get(key).is_some() || s["data"].get(key).is_some(),
                            "{}: {workload}: Secret {secret} has no key {key}",
                            r.name
                        ),
                        None => assert!(
                            production && ["aiops-secrets", "postgres"].contains(&secret),
                            "{}: {workload}: no Secret {secret}",
                            r.name
                        ),
                    }
                }
            }
            for v in pod["spec"]["volumes"]
                .as_array()
                .cloned()
                .unwrap_or_default()
            {
                if let Some(cm) = v.get("configMap") {
                    let n = cm["name"].as_str().expect("configMap name");
                    assert!(
                        r.find("ConfigMap", n).is_some(),
                        "{}: {workload}: no ConfigMap {n}",
                        r.name
                    );
                }
                if let Some(pvc) = v.get("persistentVolumeClaim") {
                    let n = pvc["claimName"].as_str().expect("claimName");
                    assert!(
                        r.find("PersistentVolumeClaim", n).is_some(),
                        "{}: {workload}: no PersistentVolumeClaim {n}",
                        r.name
                    );
                }
            }
            // Every mount names a volume of the pod (or a claim template of the StatefulSet).
            let volumes: BTreeSet<String> = pod["spec"]["volumes"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .filter_map(|v| v["name"].as_str().map(str::to_owned))
                .chain(r.claim_templates(&workload))
                .collect();
            for c in containers(pod).chain(init.iter()) {
                for m in c["volumeMounts"].as_array().cloned().unwrap_or_default() {
                    let n = m["name"].as_str().expect("mount name");
                    assert!(
                        volumes.contains(n),
                        "{}: {workload}: mount of unknown volume {n}",
                        r.name
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// URLs

#[test]
fn every_url_points_at_a_service_that_exists_on_one_of_its_ports() {
    let init_script =
        std::fs::read_to_string(repo().join("deploy/kubernetes/base/postgres/create-databases.sh"))
            .expect("create-databases.sh");
    let mut checked = 0;
    for r in all_renders() {
        let topology = r.topology();
        for (workload, pod) in r.pod_templates() {
            for c in containers(pod) {
                for (var, value) in env_values(c) {
                    let Some((scheme, rest)) = value.split_once("://") else {
                        continue;
                    };
                    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
                    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
                    let (host, port) = host_port
                        .rsplit_once(':')
                        .map(|(h, p)| {
                            (
                                h,
                                p.parse::<u16>()
                                    .unwrap_or_else(|e| panic!("{var}: port: {e}")),
                            )
                        })
                        .unwrap_or((host_port, if scheme == "https" { 443 } else { 80 }));
                    let mut labels_of_host = host.split('.');
                    let svc_name = labels_of_host.next().unwrap_or_default();
                    let ns = labels_of_host
                        .next()
                        .unwrap_or(namespace(pod_owner(r, &workload)));
                    let svc = r
                        .of_kind("Service")
                        .find(|s| name(s) == svc_name && namespace(s) == ns)
                        .unwrap_or_else(|| {
                            panic!(
                                "{}: {workload}: {var}={value}: no Service {svc_name} in {ns}",
                                r.name
                            )
                        });
                    let ports: Vec<u64> = svc["spec"]["ports"]
                        .as_array()
                        .expect("ports")
                        .iter()
                        .filter_map(|p| p["port"].as_u64())
                        .collect();
                    assert!(
                        ports.contains(&u64::from(port)),
                        "{}: {workload}: {var}: Service {svc_name} has no port {port} ({ports:?})",
                        r.name
                    );
                    match var.as_str() {
                        "AIODS_DB__URL" => {
                            assert_eq!(scheme, "postgres", "{}: {workload}: {var}", r.name);
                            let db = path.split('?').next().unwrap_or_default();
                            assert!(
                                init_script
                                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                                    .any(|w| w == db),
                                "{}: {workload}: database {db} is not created by create-databases.sh",
                                r.name
                            );
                        }
                        "SENTRY_DSN" => {
                            let project: u64 =
                                path.trim_end_matches('/').parse().expect("DSN project");
                            let accepted: Vec<i64> = topology["platform"]["sentry_projects"]
                                .as_array()
                                .map(|a| a.iter().filter_map(Value::as_i64).collect())
                                .unwrap_or_else(|| vec![1]);
                            assert!(
                                accepted.iter().any(|p| u64::try_from(*p) == Ok(project)),
                                "{}: {workload}: DSN project {project} is not accepted by aiops",
                                r.name
                            );
                            assert_eq!(svc_name, "aiops", "{}: {workload}: {var}", r.name);
                        }
                        "OTEL_EXPORTER_OTLP_ENDPOINT" => {
                            assert_eq!(svc_name, "aiops", "{}: {workload}: {var}", r.name);
                        }
                        v if v.starts_with("AIODS_UPSTREAMS__") => {
                            // The upstream is a service aiops knows this one depends on.
                            let me = workload.rsplit('/').next().unwrap_or_default();
                            let entry = topology["service"]
                                .as_array()
                                .and_then(|s| s.iter().find(|s| s["name"].as_str() == Some(me)))
                                .unwrap_or_else(|| panic!("{me} is not in aiops's topology"));
                            let deps: Vec<&str> = entry
                                .get("depends_on")
                                .and_then(Value::as_array)
                                .map(|a| a.iter().filter_map(Value::as_str).collect())
                                .unwrap_or_default();
                            assert!(
                                deps.contains(&svc_name),
                                "{}: {me} calls {svc_name} but aiops's topology does not say so",
                                r.name
                            );
                        }
                        _ => {}
                    }
                    checked += 1;
                }
            }
        }
        // The ingest key: each service sends the Secret's ingest-key as the OTLP bearer token
        // (the header form OTEL_EXPORTER_OTLP_HEADERS percent-decodes) and as its DSN's key,
        // and aiops requires that same Secret key (AIOPS_INGEST_KEYS).
        let secret_ref = |c: &Value, var: &str| -> Option<(String, String)> {
            let e = c["env"].as_array()?.iter().find(|e| e["name"] == var)?;
            let r = &e["valueFrom"]["secretKeyRef"];
            Some((
                r["name"].as_str()?.to_owned(),
                r["key"].as_str()?.to_owned(),
            ))
        };
        let ingest_secret = Some(("aiops-secrets".to_owned(), "ingest-key".to_owned()));
        let mut keyed = 0;
        for (workload, pod) in r.pod_templates() {
            for c in containers(pod) {
                if let Some(h) = env_values(c).get("OTEL_EXPORTER_OTLP_HEADERS") {
                    assert_eq!(
                        h, "authorization=Bearer%20$(AIOPS_INGEST_KEY)",
                        "{}: {workload}",
                        r.name
                    );
                    assert_eq!(
                        secret_ref(c, "AIOPS_INGEST_KEY"),
                        ingest_secret,
                        "{}: {workload}",
                        r.name
                    );
                    keyed += 1;
                }
            }
        }
        assert_eq!(keyed, FOOD_DELIVERY.len(), "{}: keyed services", r.name);
        let aiops = r.find("Deployment", "aiops").expect("aiops");
        let platform = containers(&aiops["spec"]["template"])
            .find(|c| c["name"] == "aiops")
            .expect("the aiops container");
        assert_eq!(
            secret_ref(platform, "AIOPS_INGEST_KEYS"),
            ingest_secret,
            "{}: aiops requires the key the services send",
            r.name
        );
        for secret in ["ingest_keys", "otlp_ingest_key", "sentry_keys", "api_token"] {
            assert!(
                topology["platform"].get(secret).is_none(),
                "{}: {secret} in the ConfigMap: secrets come from the Secret",
                r.name
            );
        }
    }
    // Per rendering: a database, OTLP and Sentry URL per service, and order-service's four
    // upstreams.
    assert_eq!(
        checked,
        all_renders().len() * (FOOD_DELIVERY.len() * 3 + 4),
        "URLs checked"
    );
}

/// aiops's ConfigMap is a topology aiops itself accepts (its own parser and validation), and each service it names is a Deployment of the
/// rendering, on a port that Deployment's first container declares; discovery watches the
/// namespace the Deployments are in.
#[test]
fn the_topology_config_map_is_one_aiops_accepts() {
    for r in all_renders() {
        let text = r
            .topology_text()
            .replace("@INGEST_KEY@", "0123456789abcdef");
        let topology = aiops_platform::config::Topology::parse(&text)
            .unwrap_or_else(|e| panic!("{}: aiops.toml: {e}", r.name));
        assert_eq!(topology.services.len(), FOOD_DELIVERY.len(), "{}", r.name);
        for s in &topology.services {
            let k = s
                .kubernetes
                .as_ref()
                .unwrap_or_else(|| panic!("{}: {} has no [service.kubernetes]", r.name, s.name));
            let deployment = k.deployment.as_deref().unwrap_or_default();
            let d = r
                .find("Deployment", deployment)
                .unwrap_or_else(|| panic!("{}: no Deployment {deployment}", r.name));
            assert_eq!(namespace(d), k.namespace, "{}: {}", r.name, s.name);
            let first = containers(&d["spec"]["template"])
                .next()
                .unwrap_or_else(|| panic!("{}: {deployment} has no container", r.name));
            assert_eq!(
                first["ports"][0]["containerPort"].as_u64(),
                Some(u64::from(k.port)),
                "{}: {} is probed on its first container port",
                r.name,
                s.name
            );
            assert!(
                topology
                    .platform
                    .kubernetes
                    .watch_namespaces
                    .contains(&k.namespace),
                "{}: discovery watches {}",
                r.name,
                k.namespace
            );
            assert_eq!(
                d["metadata"]["annotations"]["aiods.dev/watch"], "true",
                "{}: {deployment} opts in to discovery",
                r.name
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Conventions

#[test]
fn labels_selectors_and_pod_settings_follow_the_conventions() {
    let kustomization =
        std::fs::read_to_string(repo().join("deploy/kubernetes/base/aiops/kustomization.yaml"))
            .expect("base/aiops/kustomization.yaml");
    assert!(
        kustomization.lines().any(|l| l.trim() == "- rbac.yaml"),
        "base/aiops/kustomization.yaml does not list rbac.yaml"
    );
    for r in all_renders() {
        for o in &r.objects {
            if kind(o) != "Namespace" {
                assert_eq!(
                    namespace(o),
                    "aiods",
                    "{}: {}/{} namespace",
                    r.name,
                    kind(o),
                    name(o)
                );
            }
            assert_eq!(
                o["metadata"]["labels"]["app.kubernetes.io/part-of"].as_str(),
                Some("aiods"),
                "{}: {}/{} part-of label",
                r.name,
                kind(o),
                name(o)
            );
        }
        for (workload, pod) in r.pod_templates() {
            let l = labels(&pod["metadata"]["labels"]);
            let owner = pod_owner(r, &workload);
            let n = name(owner);
            assert_eq!(
                l.get("app.kubernetes.io/name").map(String::as_str),
                Some(n),
                "{}: {workload}",
                r.name
            );
            assert_eq!(
                l.get("app.kubernetes.io/part-of").map(String::as_str),
                Some("aiods"),
                "{}: {workload}",
                r.name
            );
            assert_eq!(
                l.get("aiods.dev/serving").map(String::as_str),
                Some("true"),
                "{}: {workload}",
                r.name
            );
            let selector = labels(&owner["spec"]["selector"]["matchLabels"]);
            assert_eq!(
                selector,
                BTreeMap::from([("app.kubernetes.io/name".to_owned(), n.to_owned())]),
                "{}: {workload}: selects on the name only",
                r.name
            );
            // Security: non-root, no privilege escalation, no capabilities, read-only root.
            assert_eq!(
                pod["spec"]["securityContext"]["runAsNonRoot"], true,
                "{}: {workload}",
                r.name
            );
            assert_eq!(
                pod["spec"]["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
                "{}: {workload}",
                r.name
            );
            let init = pod["spec"]["initContainers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for c in containers(pod).chain(init.iter()) {
                let sc = &c["securityContext"];
                assert_eq!(
                    sc["allowPrivilegeEscalation"], false,
                    "{}: {workload}",
                    r.name
                );
                assert_eq!(sc["readOnlyRootFilesystem"], true, "{}: {workload}", r.name);
                assert_eq!(
                    sc["capabilities"]["drop"],
                    serde_json::json!(["ALL"]),
                    "{}: {workload}",
                    r.name
                );
                for k in ["requests", "limits"] {
                    for res in ["cpu", "memory"] {
                        assert!(
                            c["resources"][k][res].is_string()
                                || c["resources"][k][res].is_number(),
                            "{}: {workload}/{}: no {k}.{res}",
                            r.name,
                            c["name"]
                        );
                    }
                }
            }
        }
        for svc in r.of_kind("Service") {
            let selector = labels(&svc["spec"]["selector"]);
            assert_eq!(
                selector.get("app.kubernetes.io/name").map(String::as_str),
                Some(name(svc)),
                "{}: Service {}",
                r.name,
                name(svc)
            );
            assert_eq!(
                selector.get("aiods.dev/serving").map(String::as_str),
                Some("true"),
                "{}: Service {} must select serving pods only",
                r.name,
                name(svc)
            );
        }
        let production = r.name.ends_with("production");
        for s in FOOD_DELIVERY {
            let d = r
                .find("Deployment", s)
                .unwrap_or_else(|| panic!("{}: no Deployment {s}", r.name));
            assert_eq!(
                d["metadata"]["annotations"]["aiods.dev/watch"].as_str(),
                Some("true"),
                "{}: {s} is not watched",
                r.name
            );
            assert!(r.find("Service", s).is_some(), "{}: no Service {s}", r.name);
            let replicas = d["spec"]["replicas"].as_u64().unwrap_or(1);
            if production {
                assert!(replicas >= 2, "{}: {s} has {replicas} replica(s)", r.name);
                let pdb = r
                    .find("PodDisruptionBudget", s)
                    .unwrap_or_else(|| panic!("{}: no PodDisruptionBudget {s}", r.name));
                assert_eq!(
                    labels(&pdb["spec"]["selector"]["matchLabels"]),
                    labels(&d["spec"]["selector"]["matchLabels"]),
                    "{}: PodDisruptionBudget {s} selector",
                    r.name
                );
                let anti = &d["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"];
                let term =
                    &anti["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"];
                assert_eq!(
                    term["labelSelector"]["matchLabels"]["app.kubernetes.io/name"].as_str(),
                    Some(s),
                    "{}: {s} anti-affinity",
                    r.name
                );
            } else if r.name.ends_with("dev") {
                assert_eq!(replicas, 1, "{}: {s} replicas", r.name);
            }
        }
        // aiops: one replica, Recreate, its ServiceAccount, its volume, its command line.
        let aiops = r.find("Deployment", "aiops").expect("aiops");
        assert_eq!(aiops["spec"]["replicas"], 1, "{}", r.name);
        assert_eq!(aiops["spec"]["strategy"]["type"], "Recreate", "{}", r.name);
        let pod = &aiops["spec"]["template"]["spec"];
        assert_eq!(pod["serviceAccountName"], "aiops", "{}", r.name);
        let c = &pod["containers"][0];
        assert_eq!(
            c["args"],
            serde_json::json!(["up", "--config", "/etc/aiops/aiops.toml"]),
            "{}",
            r.name
        );
        let mounts = c["volumeMounts"].as_array().expect("mounts");
        let data = mounts
            .iter()
            .find(|m| m["mountPath"] == "/var/lib/aiops")
            .expect("a volume at /var/lib/aiops");
        let volume = pod["volumes"]
            .as_array()
            .and_then(|v| v.iter().find(|v| v["name"] == data["name"]))
            .expect("the data volume");
        assert!(
            volume["persistentVolumeClaim"].is_object(),
            "{}: /var/lib/aiops is not a claim",
            r.name
        );
        assert_eq!(
            r.topology()["platform"]["data_dir"].as_str(),
            Some("/var/lib/aiops"),
            "{}: data_dir",
            r.name
        );
        let sa = r.find("ServiceAccount", "aiops");
        let binding = r.find("RoleBinding", "aiops-actuator");
        let role = r.find("Role", "aiops-actuator");
        assert!(
            sa.is_some() && binding.is_some() && role.is_some(),
            "{}: aiops's RBAC objects",
            r.name
        );
        assert!(
            r.of_kind("ClusterRole").next().is_none(),
            "{}: nothing cluster-scoped",
            r.name
        );
        assert!(
            r.of_kind("ClusterRoleBinding").next().is_none(),
            "{}: nothing cluster-scoped",
            r.name
        );
        // Postgres: a StatefulSet with a headless Service and a claim template.
        let pg = r.find("StatefulSet", "postgres").expect("postgres");
        assert_eq!(pg["spec"]["serviceName"], "postgres", "{}", r.name);
        assert_eq!(
            r.find("Service", "postgres").expect("postgres Service")["spec"]["clusterIP"],
            "None",
            "{}: postgres Service is headless",
            r.name
        );
        assert!(
            pg["spec"]["volumeClaimTemplates"][0].is_object(),
            "{}",
            r.name
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Small helpers over the rendered JSON

fn kind(o: &Value) -> &str {
    o["kind"].as_str().unwrap_or_default()
}

fn name(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or_default()
}

fn namespace(o: &Value) -> &str {
    o["metadata"]["namespace"].as_str().unwrap_or_default()
}

fn labels(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn is_subset(small: &BTreeMap<String, String>, big: &BTreeMap<String, String>) -> bool {
    small.iter().all(|(k, v)| big.get(k) == Some(v))
}

/// The containers of a pod template.
fn containers(pod: &Value) -> impl Iterator<Item = &Value> {
    pod["spec"]["containers"]
        .as_array()
        .map(|a| a.iter())
        .into_iter()
        .flatten()
}

/// Declared container ports: name (or the number as text) → number.
fn container_ports(c: &Value) -> BTreeMap<String, u16> {
    c["ports"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    let n = u16::try_from(p["containerPort"].as_u64().expect("containerPort"))
                        .expect("port");
                    (
                        p["name"]
                            .as_str()
                            .map_or_else(|| n.to_string(), str::to_owned),
                        n,
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A probe's or Service's port (a name or a number) among the declared ones.
fn resolve_port(port: &Value, declared: &BTreeMap<String, u16>) -> Option<u16> {
    match port {
        Value::String(n) => declared.get(n).copied(),
        Value::Number(n) => {
            let n = u16::try_from(n.as_u64()?).ok()?;
            declared.values().any(|p| *p == n).then_some(n)
        }
        _ => None,
    }
}

/// Literal `value`s of a container's environment.
fn env_values(c: &Value) -> BTreeMap<String, String> {
    c["env"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| {
                    Some((
                        e["name"].as_str()?.to_owned(),
                        e["value"].as_str()?.to_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The `$(VAR)` references of an env value.
fn dependent_vars(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some(i) = rest.find("$(") {
        let after = &rest[i + 2..];
        match after.find(')') {
            Some(j) => {
                out.push(after[..j].to_owned());
                rest = &after[j + 1..];
            }
            None => break,
        }
    }
    out
}

/// The workload object (`Kind/name`) a pod template belongs to.
fn pod_owner<'a>(r: &'a Render, workload: &str) -> &'a Value {
    let (k, n) = workload.split_once('/').expect("Kind/name");
    r.find(k, n).expect("workload")
}

#[test]
fn kubernetes_validate_is_the_pinned_version() {
    // The venv holds what tests/python/requirements-kubernetes.txt pins; the schemas it ships
    // are what "newest" means in the validation test.
    let out = kubernetes_validate(&["--version"]);
    let pins = std::fs::read_to_string(kubernetes_support::requirements()).expect("requirements");
    let pinned = pins
        .lines()
        .find_map(|l| l.strip_prefix("kubernetes-validate=="))
        .expect("kubernetes-validate pinned");
    assert_eq!(out.trim(), pinned.trim());
}

// ---------------------------------------------------------------------------------------------
// Postgres: the init script and the services' database URLs, on a real PostgreSQL

/// A PostgreSQL from Debian's packages on a free loopback port, initialised the way the
/// postgres image does it (`POSTGRES_USER` as the superuser, a password for TCP), stopped on
/// drop. Run as the `postgres` user when the tests run as root (PostgreSQL refuses root).
struct Postgres {
    bin: std::path::PathBuf,
    data: std::path::PathBuf,
    as_root: bool,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Postgres {
    fn command(&self, program: &str) -> std::process::Command {
        let exe = self.bin.join(program);
        if self.as_root {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            std::process::Command::new(exe)
        }
    }

    fn run(mut cmd: std::process::Command, what: &str) {
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
        assert!(
            out.status.success(),
            "{what} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn start(user: &str, password: &str) -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin"))
            .find(|b| b.join("initdb").is_file())
            .expect(
                "PostgreSQL's initdb is required (Debian: apt-get install postgresql); none in /usr/lib/postgresql/*/bin",
            );
        let as_root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, password).expect("password file");
        if as_root {
            Self::run(
                {
                    let mut c = std::process::Command::new("chown");
                    c.args(["-R", "postgres:postgres"]).arg(dir.path());
                    c
                },
                "chown the PostgreSQL folder",
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let pg = Self {
            bin,
            data,
            as_root,
            port,
            _dir: dir,
        };
        let mut initdb = pg.command("initdb");
        initdb
            .arg("-D")
            .arg(&pg.data)
            .args([
                "-U",
                user,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--no-sync",
                "-E",
                "UTF8",
            ])
            .arg(format!("--pwfile={}", pwfile.display()));
        Self::run(initdb, "initdb");
        let mut start = pg.command("pg_ctl");
        start
            .arg("-D")
            .arg(&pg.data)
            .args(["-w", "-l"])
            .arg(pg.data.join("log"))
            .arg("-o")
            .arg(format!(
                "-p {port} -c listen_addresses=127.0.0.1 -k {}",
                pg.data.display()
            ))
            .arg("start");
        Self::run(start, "pg_ctl start");
        pg
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let mut stop = self.command("pg_ctl");
        stop.arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "stop"]);
        let _ = stop.output();
    }
}

#[tokio::test]
async fn the_init_script_makes_the_databases_the_services_connect_to() {
    use sqlx::Connection as _;
    let r = render("overlays/dev");
    let secret = |name: &str, key: &str| -> String {
        r.find("Secret", name)
            .and_then(|s| s["stringData"][key].as_str())
            .unwrap_or_else(|| panic!("Secret {name} key {key}"))
            .to_owned()
    };
    // What the StatefulSet gives the postgres image.
    let sts = r.find("StatefulSet", "postgres").expect("postgres");
    let pg_env = env_values(&sts["spec"]["template"]["spec"]["containers"][0]);
    let user = pg_env.get("POSTGRES_USER").expect("POSTGRES_USER").clone();
    let password = secret("postgres", "password");
    let pg = Postgres::start(&user, &password);

    // The image's entrypoint runs the init script with its environment, over the local socket.
    let script = repo().join("deploy/kubernetes/base/postgres/create-databases.sh");
    let out = std::process::Command::new("sh")
        .arg(&script)
        .env("POSTGRES_USER", &user)
        .env("PGHOST", &pg.data)
        .env("PGPORT", pg.port.to_string())
        .output()
        .expect("sh create-databases.sh");
    assert!(
        out.status.success(),
        "create-databases.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Each service's AIODS_DB__URL, as the kubelet expands it, with the Service name resolved
    // to this server: it connects, to a database its user owns.
    let mut connected = 0;
    for s in FOOD_DELIVERY {
        let d = r.find("Deployment", s).expect("deployment");
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        let env = env_values(c);
        let url = env.get("AIODS_DB__URL").expect("AIODS_DB__URL");
        let pw_ref = c["env"]
            .as_array()
            .and_then(|a| a.iter().find(|e| e["name"] == "POSTGRES_PASSWORD"))
            .and_then(|e| e["valueFrom"]["secretKeyRef"].as_object())
            .expect("POSTGRES_PASSWORD from a Secret");
        let pw = secret(
            pw_ref["name"].as_str().expect("name"),
            pw_ref["key"].as_str().expect("key"),
        );
        let url = url
            .replace("$(POSTGRES_PASSWORD)", &pw)
            .replace("@postgres:5432/", &format!("@127.0.0.1:{}/", pg.port));
        let mut conn = sqlx::PgConnection::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("{s}: cannot connect with its AIODS_DB__URL: {e}"));
        let (db, owner): (String, String) = sqlx::query_as(
            "SELECT current_database()::text, pg_get_userbyid(datdba)::text \
             FROM pg_database WHERE datname = current_database()",
        )
        .fetch_one(&mut conn)
        .await
        .expect("query");
        assert_eq!(owner, user, "{s}: owner of {db}");
        sqlx::query("CREATE TABLE probe (id integer)")
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{s}: cannot create a table in {db}: {e}"));
        conn.close().await.expect("close");
        connected += 1;
    }
    assert_eq!(connected, FOOD_DELIVERY.len());
}
