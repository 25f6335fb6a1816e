//! lab.toml as written, before validation. Every scalar is `Lenient`, so a
//! value of the wrong type becomes one reported problem instead of aborting
//! the whole parse: `petitlab check` can then report every problem at once.

use serde::{Deserialize, Deserializer, de::DeserializeOwned};

/// A field that may be missing, well-typed, or of the wrong type.
#[derive(Debug, Clone, Default)]
pub enum Lenient<T> {
    #[default]
    Missing,
    Value(T),
    /// The type error, as serde words it.
    Invalid(String),
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = toml::Value::deserialize(d)?;
        Ok(match value.try_into::<T>() {
            Ok(v) => Lenient::Value(v),
            Err(e) => Lenient::Invalid(e.to_string().trim().to_string()),
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawLab {
    pub state_dir: Lenient<String>,
    pub petitboot: RawPetitboot,
    pub http: RawServer,
    pub tftp: RawServer,
    pub dhcp: RawDhcp,
    pub console: RawConsole,
    pub deploy: super::deploy::RawDeploySettings,
    pub iscsi: super::iscsi::RawIscsi,
    pub service: super::service::RawService,
    /// Nodes stay untyped here and are deserialized one by one, so a broken
    /// node never hides the problems of the others.
    pub node: Vec<toml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawPetitboot {
    pub config_template: Lenient<String>,
    pub protocol: Lenient<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawServer {
    pub base_url: Lenient<String>,
    pub root: Lenient<String>,
    pub listen: Lenient<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawDhcp {
    pub backend: Lenient<String>,
    pub hostsdir: Lenient<String>,
    pub optsdir: Lenient<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawConsole {
    /// `[[console.stage_pattern]]` tables: extra boot-stage patterns.
    pub stage_pattern: Lenient<Vec<crate::console::StagePattern>>,
    /// The lab service keeps every console connected (default true).
    pub always: Lenient<bool>,
    /// Group name → `always` for that group's nodes.
    pub always_by_group: Lenient<std::collections::BTreeMap<String, bool>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawNode {
    pub name: Lenient<String>,
    pub uuid: Lenient<String>,
    pub macs: Lenient<Vec<String>>,
    pub ipv4: Lenient<String>,
    pub cpu_arch: Lenient<String>,
    pub boot_option: Lenient<String>,
    pub deploy_interface: Lenient<String>,
    pub console: Lenient<String>,
    pub kernel_args: Lenient<String>,
    pub bootif: Lenient<bool>,
    pub protocol: Lenient<String>,
    pub group: Lenient<String>,
    pub console_always: Lenient<bool>,
    pub bmc: Option<RawBmc>,
    pub deploy: Option<RawDeploy>,
    pub instance: Option<RawInstance>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawBmc {
    pub host: Lenient<String>,
    pub port: Lenient<u16>,
    pub username: Lenient<String>,
    pub password: Lenient<String>,
    pub password_env: Lenient<String>,
    pub password_file: Lenient<String>,
    /// `"auto"`, `3` or `17` (integers or strings).
    pub cipher_suite: Lenient<toml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawDeploy {
    pub kernel: Lenient<String>,
    pub ramdisk: Lenient<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawInstance {
    pub image: Lenient<String>,
    pub kernel: Lenient<String>,
    pub ramdisk: Lenient<String>,
    pub root_device: Lenient<String>,
}

/// Deserialize `value` as `T`, collecting the dotted paths of keys that
/// `T` does not know (typos such as `pasword_file` must not pass silently).
pub fn deserialize_collecting_unknown<T: DeserializeOwned>(
    value: toml::Value,
) -> Result<(T, Vec<String>), String> {
    let mut unknown = Vec::new();
    // serde_ignored marks Option layers as `?`; lab.toml has no such level.
    let record = |path: serde_ignored::Path| unknown.push(path.to_string().replace(".?", ""));
    let parsed = serde_ignored::deserialize(value, record)
        .map_err(|e: toml::de::Error| e.to_string().trim().to_string())?;
    Ok((parsed, unknown))
}
