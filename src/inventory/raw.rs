//! lab.toml as written, before validation. Every scalar is `Lenient`, so a
//! value of the wrong type becomes one reported problem instead of aborting
//! the whole parse: `petitlab check` can then report every problem at once.

use std::fmt;
use std::marker::PhantomData;

use serde::de::value::Error as ValueError;
use serde::de::{
    self, DeserializeOwned, IntoDeserializer, MapAccess, SeqAccess, Unexpected, Visitor,
};
use serde::{Deserialize, Deserializer};

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
        d.deserialize_any(LenientVisitor(PhantomData))
    }
}

/// Scalars are converted straight from what the parser saw; only arrays
/// and tables are buffered as a `toml::Value` first. A 4000-node lab has
/// some 60000 scalars, and buffering each one cost a third of loading it.
struct LenientVisitor<T>(PhantomData<T>);

fn scalar<'de, T: DeserializeOwned, V: IntoDeserializer<'de, ValueError>>(v: V) -> Lenient<T> {
    match T::deserialize(v.into_deserializer()) {
        Ok(v) => Lenient::Value(v),
        Err(e) => Lenient::Invalid(e.to_string().trim().to_string()),
    }
}

fn buffered<T: DeserializeOwned>(value: toml::Value) -> Lenient<T> {
    match value.try_into::<T>() {
        Ok(v) => Lenient::Value(v),
        Err(e) => Lenient::Invalid(e.to_string().trim().to_string()),
    }
}

impl<'de, T: DeserializeOwned> Visitor<'de> for LenientVisitor<T> {
    type Value = Lenient<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any TOML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(scalar(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(scalar(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(scalar(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(scalar(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(scalar(v))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(scalar(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        let value = toml::Value::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
        Ok(buffered(value))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let value = toml::Value::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(buffered(value))
    }
}

/// A table (`[node.bmc]`, one `[[node]]`) whose type is checked like a
/// [`Lenient`] field: something other than a table is one reported problem.
/// `T`'s fields must all be lenient, so that a table always deserializes
/// straight into it, without being buffered.
#[derive(Debug)]
pub struct Section<T>(pub Lenient<T>);

impl<T> Default for Section<T> {
    fn default() -> Self {
        Section(Lenient::Missing)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Section<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SectionVisitor(PhantomData))
    }
}

struct SectionVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for SectionVisitor<T> {
    type Value = Section<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a table")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let table = T::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(Section(Lenient::Value(table)))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(not_a_table(Unexpected::Bool(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(not_a_table(Unexpected::Signed(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(not_a_table(Unexpected::Unsigned(v)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(not_a_table(Unexpected::Float(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(not_a_table(Unexpected::Str(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        de::IgnoredAny::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
        Ok(not_a_table(Unexpected::Seq))
    }
}

fn not_a_table<T>(what: Unexpected) -> Section<T> {
    let e = <ValueError as de::Error>::invalid_type(what, &"a table");
    Section(Lenient::Invalid(e.to_string()))
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
    pub timeline: super::timeline::RawTimeline,
    pub service: super::service::RawService,
    /// Each node's fields are lenient, so a broken node never hides the
    /// problems of the others.
    pub node: Vec<Section<RawNode>>,
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
    /// dnsmasq's `--log-facility` file, followed for the boot timeline.
    pub log: Lenient<String>,
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
    pub bmc: Section<RawBmc>,
    pub deploy: Section<RawDeploy>,
    pub instance: Section<RawInstance>,
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
    /// `"ipmi"` or `"redfish"`.
    pub protocol: Lenient<String>,
    /// `"sol"`, `"ssh"` or `"websocket"`.
    pub console: Lenient<String>,
    pub ssh_port: Lenient<u16>,
    pub ssh_key: Lenient<String>,
    pub ca_file: Lenient<String>,
    pub fingerprint: Lenient<String>,
    pub insecure: Lenient<bool>,
    pub system_id: Lenient<String>,
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
pub fn deserialize_collecting_unknown<'de, T, D>(value: D) -> Result<(T, Vec<String>), String>
where
    T: Deserialize<'de>,
    D: Deserializer<'de, Error = toml::de::Error>,
{
    let mut unknown = Vec::new();
    // serde_ignored marks Option layers as `?`; lab.toml has no such level.
    let record = |path: serde_ignored::Path| unknown.push(path.to_string().replace(".?", ""));
    let parsed =
        serde_ignored::deserialize(value, record).map_err(|e| e.to_string().trim().to_string())?;
    Ok((parsed, unknown))
}
