//! The petitboot boot driver: stages artifacts into the served tree, renders
//! each node's config with tera, and sets DHCP options 209/210.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::dhcp::{self, DhcpOptions, DhcpProvider};
use crate::fsutil;
use crate::inventory::{self, BootOption, InstanceImage, Lab, Node, Problem, Protocol};

use super::layout::Layout;
use super::manifest::{self, Entry, Manifest, Removal};
use super::properties::PROPERTIES;
use super::{BootError, BootInterface, Changes, Property, RamdiskParams, Stage, pxeconf};

const TEMPLATE_NAME: &str = "petitboot.cfg";
const TEMPLATE_FIELD: &str = "petitboot.config_template";

/// One artifact server as configs name it.
struct Served {
    root: PathBuf,
    /// `None` when lab.toml gives no usable base URL (reported by validate).
    base_url: Option<String>,
    base_url_field: String,
}

pub struct PetitbootBoot {
    http: Served,
    tftp: Served,
    default_protocol: Protocol,
    state_dir: PathBuf,
    template_label: String,
    tera: tera::Tera,
    dhcp: Box<dyn DhcpProvider>,
    sweeper: fsutil::Sweeper,
}

/// A config as it would be written for a node and stage.
#[derive(Debug, Clone, Serialize)]
pub struct Rendered {
    pub node: String,
    pub stage: Stage,
    pub config: String,
    pub config_path: PathBuf,
    pub discovery_paths: Vec<PathBuf>,
    pub config_url: String,
    pub kernel_url: String,
    pub initrd_url: String,
    pub dhcp: DhcpOptions,
    /// (source in lab.toml, staged path) for kernel and ramdisk.
    pub artifacts: Vec<(PathBuf, PathBuf)>,
}

/// What the template sees of a node (never its BMC credentials).
#[derive(Serialize)]
struct TemplateNode<'a> {
    name: &'a str,
    uuid: String,
    macs: Vec<String>,
    ipv4: Option<String>,
    cpu_arch: crate::inventory::CpuArch,
    boot_option: BootOption,
    console: Option<&'a str>,
    kernel_args: &'a str,
}

impl PetitbootBoot {
    pub fn new(lab: &Lab) -> Result<Self, BootError> {
        let template_label = match &lab.petitboot.template.path {
            Some(path) => path.display().to_string(),
            None => "the embedded default template".to_string(),
        };
        let mut tera = tera::Tera::default();
        tera.add_raw_template(TEMPLATE_NAME, &lab.petitboot.template.source)
            .map_err(|e| BootError::Template(format!("{template_label}: {}", error_chain(&e))))?;
        let served = |protocol: Protocol| {
            let server = lab.server(protocol);
            Served {
                root: server.root.clone(),
                base_url: server.base_url.clone(),
                base_url_field: format!("{}.base_url", protocol.scheme()),
            }
        };
        Ok(PetitbootBoot {
            http: served(Protocol::Http),
            tftp: served(Protocol::Tftp),
            default_protocol: lab.petitboot.protocol,
            state_dir: lab.state_dir.clone(),
            template_label,
            tera,
            dhcp: dhcp::provider_for(&lab.dhcp),
            sweeper: fsutil::Sweeper::default(),
        })
    }

    fn layout<'a>(&'a self, node: &'a Node) -> Result<Layout<'a>, Problem> {
        let served = match node.protocol.unwrap_or(self.default_protocol) {
            Protocol::Http => &self.http,
            Protocol::Tftp => &self.tftp,
        };
        let base_url = served.base_url.as_deref().ok_or_else(|| {
            Problem::error(
                Some(&node.name),
                &served.base_url_field,
                "is required to render URLs",
            )
        })?;
        Ok(Layout {
            root: &served.root,
            base_url,
            node,
        })
    }

    /// The config `node` gets at `stage`, exactly as it would be written.
    /// `Ok(None)`: the node boots its local disk and gets no config at all.
    pub fn render(&self, node: &Node, stage: Stage) -> Result<Option<Rendered>, Vec<Problem>> {
        self.render_with(node, stage, &[])
    }

    /// `render`, with `extra_args` (petitlab's own, e.g. the agent token)
    /// after the node's kernel arguments.
    pub fn render_with(
        &self,
        node: &Node,
        stage: Stage,
        extra_args: &[String],
    ) -> Result<Option<Rendered>, Vec<Problem>> {
        let layout = self.layout(node).map_err(|p| vec![p])?;
        let (kernel_src, ramdisk_src, root) = match (stage, &node.instance) {
            (Stage::Deploy, _) => (&node.deploy.kernel, &node.deploy.ramdisk, None),
            (Stage::Instance, _) if node.boot_option == BootOption::Local => return Ok(None),
            (
                Stage::Instance,
                InstanceImage::Partition {
                    kernel,
                    ramdisk,
                    root_device,
                    ..
                },
            ) => (kernel, ramdisk, Some(root_device.as_str())),
            (Stage::Instance, InstanceImage::WholeDisk { .. }) => {
                let msg = "boot_option netboot needs a partition image";
                return Err(vec![Problem::error(Some(&node.name), "instance", msg)]);
            }
        };
        // Hazardous kernel_args are reported on their own field, and left out
        // of the render so the template is judged on its own.
        let mut problems = kernel_args_problems(node);
        let args_ok = problems.is_empty();

        let [kernel_name, ramdisk_name] = Layout::artifact_names(stage);
        let kernel_url = layout.url(kernel_name);
        let initrd_url = layout.url(ramdisk_name);
        let mut append = append_line(root, node, args_ok);
        for arg in extra_args {
            if !append.is_empty() {
                append.push(' ');
            }
            append.push_str(arg);
        }
        let mut context = tera::Context::new();
        context.insert("node", &template_node(node));
        context.insert("stage", stage.name());
        context.insert("label", stage.name());
        context.insert("kernel_url", &kernel_url);
        context.insert("initrd_url", &initrd_url);
        context.insert("append", &append);
        context.insert("ipappend", &node.bootif);
        let config = match self.tera.render(TEMPLATE_NAME, &context) {
            Ok(config) => config,
            Err(e) => {
                let msg = format!(
                    "{} fails to render: {}",
                    self.template_label,
                    error_chain(&e)
                );
                problems.push(Problem::error(Some(&node.name), TEMPLATE_FIELD, msg));
                return Err(problems);
            }
        };
        problems.extend(pxeconf::lint(&config).iter().map(|e| {
            let article = if stage.name().starts_with(['a', 'e', 'i', 'o', 'u']) {
                "an"
            } else {
                "a"
            };
            let msg = format!(
                "{} renders {article} {} config petitboot would misread: {e}",
                self.template_label,
                stage.name()
            );
            Problem::error(Some(&node.name), TEMPLATE_FIELD, msg)
        }));
        if !problems.is_empty() {
            return Err(problems);
        }

        let dhcp = layout.dhcp_options();
        Ok(Some(Rendered {
            node: node.name.clone(),
            stage,
            config_url: dhcp.config_url(),
            config,
            config_path: layout.config(),
            discovery_paths: layout.discovery_files(),
            kernel_url,
            initrd_url,
            dhcp,
            artifacts: vec![
                (kernel_src.clone(), layout.artifact(kernel_name)),
                (ramdisk_src.clone(), layout.artifact(ramdisk_name)),
            ],
        }))
    }

    /// The DHCP files `prepare_*` would write for the node.
    pub fn dhcp_plan(&self, node: &Node) -> Vec<dhcp::PlannedFile> {
        match self.layout(node) {
            Ok(layout) => self.dhcp.plan(node, &layout.dhcp_options()),
            Err(_) => Vec::new(),
        }
    }

    /// The served root `path` lies under, which no write or delete may
    /// leave through a symlink. A path under neither (a manifest written
    /// before lab.toml moved a root) is confined to its own directory.
    fn root_of<'a>(&'a self, path: &'a Path) -> &'a Path {
        [&self.http.root, &self.tftp.root]
            .into_iter()
            .filter(|root| path.starts_with(root))
            .max_by_key(|root| root.components().count())
            .map(PathBuf::as_path)
            .or_else(|| path.parent())
            .unwrap_or(path)
    }

    fn manifest_path(&self, node: &Node, stage: Stage) -> PathBuf {
        self.state_dir
            .join("boot")
            .join(node.uuid.to_string())
            .join(format!("{}.json", stage.name()))
    }

    fn prepare(
        &self,
        node: &Node,
        stage: Stage,
        extra_args: &[String],
    ) -> Result<Changes, BootError> {
        let rendered = self
            .render_with(node, stage, extra_args)
            .map_err(|problems| BootError::Invalid {
                node: node.name.clone(),
                problems,
            })?;
        let Some(rendered) = rendered else {
            return self.prepare_local_instance(node);
        };
        let problems = artifact_problems(&rendered);
        if !problems.is_empty() {
            return Err(BootError::Invalid {
                node: node.name.clone(),
                problems,
            });
        }

        let manifest_path = self.manifest_path(node, stage);
        let old = manifest::read(&manifest_path)
            .map_err(io_error(node, "read", &manifest_path))?
            .unwrap_or_default();
        let config_paths: Vec<&PathBuf> = rendered
            .discovery_paths
            .iter()
            .chain([&rendered.config_path])
            .collect();
        let mut new = Manifest {
            files: rendered
                .artifacts
                .iter()
                .map(|(_, staged)| Entry {
                    path: staged.clone(),
                    content: None,
                })
                .collect(),
            dhcp: true,
        };
        new.files.extend(config_paths.iter().map(|path| Entry {
            path: (*path).clone(),
            content: Some(rendered.config.clone()),
        }));
        // Record intent before touching the tree, so clean-up finds
        // everything even if we are killed half-way.
        manifest::write(&self.state_dir, &manifest_path, &old.union(&new)).map_err(io_error(
            node,
            "write",
            &manifest_path,
        ))?;

        let mut changes = Changes::default();
        // Temp files a killed run left behind, in every directory we write to.
        let dhcp_files = self.dhcp.plan(node, &rendered.dhcp);
        // (root, file): a DHCP file's directory is its own root.
        let targets = config_paths
            .iter()
            .map(|p| (self.root_of(p), p.as_path()))
            .chain(
                dhcp_files
                    .iter()
                    .filter_map(|f| Some((f.path.parent()?, f.path.as_path()))),
            )
            .chain([(self.state_dir.as_path(), manifest_path.as_path())]);
        for (root, file) in targets {
            let Some(dir) = file.parent() else { continue };
            self.sweeper.sweep(root, dir).map_err(io_error(
                node,
                "clean stale temp files in",
                dir,
            ))?;
        }
        // Artifacts first, config last: petitboot never sees a config whose
        // kernel is not there yet.
        for (source, staged) in &rendered.artifacts {
            fsutil::stage_file(source, self.root_of(staged), staged)
                .map_err(io_error(node, "stage", staged))?;
            changes.written.push(staged.clone());
        }
        for path in config_paths {
            fsutil::write_atomic(self.root_of(path), path, rendered.config.as_bytes(), 0o644)
                .map_err(io_error(node, "write", path))?;
            changes.written.push(path.clone());
        }
        let dhcp_written = dhcp::write_planned(&dhcp_files).map_err(|source| BootError::Dhcp {
            node: node.name.clone(),
            source,
        })?;
        changes.written.extend(dhcp_written);

        // Leftovers of this step's previous run that no longer apply.
        self.remove_entries(node, old.minus(&new), &mut changes)?;
        manifest::write(&self.state_dir, &manifest_path, &new).map_err(io_error(
            node,
            "write",
            &manifest_path,
        ))?;
        Ok(changes)
    }

    /// Local boot: the node must get no config (petitboot then boots the
    /// disk), so remove its config, discovery files and DHCP options.
    fn prepare_local_instance(&self, node: &Node) -> Result<Changes, BootError> {
        let layout = self.layout(node).map_err(|p| BootError::Invalid {
            node: node.name.clone(),
            problems: vec![p],
        })?;
        let mut changes = Changes::default();
        for path in std::iter::once(layout.config()).chain(layout.discovery_files()) {
            let removed = fsutil::remove_if_present(layout.root, &path)
                .map_err(io_error(node, "remove", &path))?;
            if removed {
                changes.removed.push(path);
            }
        }
        self.release_dhcp(node, &mut changes)?;
        let manifest_path = self.manifest_path(node, Stage::Instance);
        manifest::write(&self.state_dir, &manifest_path, &Manifest::default())
            .map_err(io_error(node, "write", &manifest_path))?;
        Ok(changes)
    }

    fn release_dhcp(&self, node: &Node, changes: &mut Changes) -> Result<(), BootError> {
        let released = self.dhcp.release(node).map_err(|source| BootError::Dhcp {
            node: node.name.clone(),
            source,
        })?;
        changes.written.extend(released.rewritten);
        changes.removed.extend(released.removed);
        Ok(())
    }

    fn remove_entries(
        &self,
        node: &Node,
        entries: Vec<Entry>,
        changes: &mut Changes,
    ) -> Result<(), BootError> {
        for entry in entries {
            let outcome = entry.remove(self.root_of(&entry.path)).map_err(io_error(
                node,
                "remove",
                &entry.path,
            ))?;
            match outcome {
                Removal::Removed => changes.removed.push(entry.path),
                Removal::Absent => {}
                Removal::Kept(why) => changes.kept.push((entry.path, why)),
            }
        }
        Ok(())
    }

    fn clean_up(&self, node: &Node, stage: Stage) -> Result<Changes, BootError> {
        let manifest_path = self.manifest_path(node, stage);
        let Some(manifest) =
            manifest::read(&manifest_path).map_err(io_error(node, "read", &manifest_path))?
        else {
            return Ok(Changes::default());
        };
        let mut changes = Changes::default();
        // Configs first, so petitboot stops finding them before the kernels go.
        let (configs, artifacts): (Vec<Entry>, Vec<Entry>) = manifest
            .files
            .into_iter()
            .partition(|e| e.content.is_some());
        self.remove_entries(node, configs, &mut changes)?;
        self.remove_entries(node, artifacts, &mut changes)?;

        let other = match stage {
            Stage::Deploy => Stage::Instance,
            Stage::Instance => Stage::Deploy,
        };
        let other_path = self.manifest_path(node, other);
        let other_needs_dhcp = manifest::read(&other_path)
            .map_err(io_error(node, "read", &other_path))?
            .is_some_and(|m| m.dhcp);
        if manifest.dhcp && !other_needs_dhcp {
            self.release_dhcp(node, &mut changes)?;
        }
        fsutil::remove_if_present(&self.state_dir, &manifest_path).map_err(io_error(
            node,
            "remove",
            &manifest_path,
        ))?;
        if let Some(dir) = manifest_path.parent() {
            fsutil::remove_dir_if_empty(&self.state_dir, dir)
                .map_err(io_error(node, "remove", dir))?;
        }
        if let Ok(layout) = self.layout(node) {
            let dir = layout.node_dir();
            fsutil::remove_dir_if_empty(layout.root, &dir)
                .map_err(io_error(node, "remove", &dir))?;
        }
        Ok(changes)
    }
}

/// Maps an I/O error to one naming the node, the action and the file.
fn io_error(
    node: &Node,
    action: &'static str,
    path: &Path,
) -> impl FnOnce(std::io::Error) -> BootError + use<> {
    let node = node.name.clone();
    let path = path.to_path_buf();
    move |source| BootError::Io {
        node,
        action,
        path,
        source,
    }
}

/// The node properties the petitboot driver reads.
pub fn properties() -> &'static [Property] {
    PROPERTIES
}

impl BootInterface for PetitbootBoot {
    fn properties(&self) -> &'static [Property] {
        PROPERTIES
    }

    fn validate(&self, node: &Node) -> Vec<Problem> {
        // The image is not staged by the boot interface, but a deploy reads it.
        let (InstanceImage::WholeDisk { image } | InstanceImage::Partition { image, .. }) =
            &node.instance;
        let mut problems: Vec<Problem> =
            inventory::file_problem(&node.name, "instance.image", image)
                .into_iter()
                .collect();
        for stage in [Stage::Deploy, Stage::Instance] {
            let found = match self.render(node, stage) {
                Ok(Some(rendered)) => artifact_problems(&rendered),
                Ok(None) => Vec::new(),
                Err(found) => found,
            };
            for p in found {
                if !problems.contains(&p) {
                    problems.push(p);
                }
            }
        }
        problems
    }

    fn prepare_ramdisk_with(
        &self,
        node: &Node,
        params: &RamdiskParams,
    ) -> Result<Changes, BootError> {
        self.prepare(node, Stage::Deploy, &params.kernel_args)
    }

    fn clean_up_ramdisk(&self, node: &Node) -> Result<Changes, BootError> {
        self.clean_up(node, Stage::Deploy)
    }

    fn prepare_instance(&self, node: &Node) -> Result<Changes, BootError> {
        self.prepare(node, Stage::Instance, &[])
    }

    fn clean_up_instance(&self, node: &Node) -> Result<Changes, BootError> {
        self.clean_up(node, Stage::Instance)
    }
}

/// The staged files' sources, checked again where they are used: one may
/// have become a FIFO or a device since lab.toml was loaded, and staging
/// must never block on one or copy it. (A preview renders without them.)
fn artifact_problems(rendered: &Rendered) -> Vec<Problem> {
    let fields = match rendered.stage {
        Stage::Deploy => ["deploy.kernel", "deploy.ramdisk"],
        Stage::Instance => ["instance.kernel", "instance.ramdisk"],
    };
    fields
        .into_iter()
        .zip(&rendered.artifacts)
        .filter_map(|(field, (source, _))| inventory::file_problem(&rendered.node, field, source))
        .collect()
}

fn template_node(node: &Node) -> TemplateNode<'_> {
    TemplateNode {
        name: &node.name,
        uuid: node.uuid.to_string(),
        macs: node.macs.iter().map(ToString::to_string).collect(),
        ipv4: node.ipv4.map(|ip| ip.to_string()),
        cpu_arch: node.cpu_arch,
        boot_option: node.boot_option,
        console: node.console.as_deref(),
        kernel_args: &node.kernel_args,
    }
}

/// The kernel command line: root= (netboot instance), console=, then the
/// node's own arguments (when they are safe to include).
fn append_line(root: Option<&str>, node: &Node, with_args: bool) -> String {
    let mut parts = Vec::new();
    if let Some(root) = root {
        parts.push(format!("root={root}"));
    }
    if let Some(console) = &node.console {
        parts.push(format!("console={console}"));
    }
    if with_args {
        parts.extend(node.kernel_args.split_whitespace().map(str::to_string));
    }
    parts.join(" ")
}

/// Hazards in `kernel_args`, named on that field rather than on the template.
fn kernel_args_problems(node: &Node) -> Vec<Problem> {
    let args = node.kernel_args.trim();
    let mut found = Vec::new();
    if args.to_ascii_lowercase().contains("initrd=") {
        found.push("contains \"initrd=\": petitboot would take what follows as the initrd (even inside a word such as noinitrd=)");
    }
    if args.starts_with(['"', '\'']) || args.ends_with(['"', '\'']) {
        found.push("starts or ends with a quote, which petitboot strips");
    }
    if args.contains('#') {
        found.push("contains '#', which is not a comment to petitboot: it reaches the kernel");
    }
    if args.contains("${") {
        found.push(
            "contains ${...}: petitboot does not expand variables (set bootif = true for BOOTIF)",
        );
    }
    found
        .into_iter()
        .map(|msg| Problem::error(Some(&node.name), "kernel_args", msg))
        .collect()
}

/// A tera error with its causes (tera puts the useful part in `source`).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

#[cfg(test)]
#[path = "petitboot_tests.rs"]
mod tests;
