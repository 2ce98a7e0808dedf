//! Weights in safetensors files with PyTorch state-dict names (`conv1.weight`,
//! `conv1.bias`, `conv2.*`, `fc1.*`, `fc2.*` for the reference network,
//! `blocks.<i>.weight` / `.bias` for a `[network]`), written atomically, plus
//! the small safetensors helpers the checkpoint shares.
//!
//! A reference state dict converted to safetensors loads as is: its duplicate
//! `<layer>_s.layer.*` entries and `spike.ksi` are ignored.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use safetensors::SafeTensorError;
use safetensors::tensor::{Dtype, SafeTensors, View};
use tch::{Device, Kind, Tensor};

use crate::host_tensor;
use spikecv_common::experiment::network::NetworkSpec;

use crate::model::{Net, NetConfig};

/// Key of the network config in a weights file's safetensors metadata.
pub const NET_CONFIG_KEY: &str = "spikecv.net_config";

/// Key of the block list (`[network]`, as JSON) in a weights file's
/// safetensors metadata; absent for the reference network.
pub const NETWORK_KEY: &str = "spikecv.network";

/// A weights or checkpoint file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// An OS error on a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid safetensors.
    #[error("{path}: not a valid safetensors file: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// A tensor the network needs is absent.
    #[error("{path}: tensor {name} is missing")]
    Missing {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
    },
    /// A tensor has a shape other than the network's.
    #[error("{path}: tensor {name} has shape {found:?}, the network needs {expected:?}")]
    Shape {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
        /// Shape in the file.
        found: Vec<i64>,
        /// Shape the network has.
        expected: Vec<i64>,
    },
    /// A tensor has an element type that cannot hold weights.
    #[error("{path}: tensor {name} has unsupported type {dtype}")]
    Dtype {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
        /// Its type as the file names it.
        dtype: String,
    },
    /// libtorch failed on a tensor.
    #[error("{path}: {source}")]
    Torch {
        /// The file.
        path: PathBuf,
        /// libtorch's error.
        source: tch::TchError,
    },
}

/// A tensor copied to host bytes, ready to serialise.
struct HostTensor {
    dtype: Dtype,
    shape: Vec<usize>,
    /// Contiguous, on the CPU; written from its own memory.
    tensor: Tensor,
}

impl View for &HostTensor {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(host_tensor::bytes(&self.tensor))
    }
    fn data_len(&self) -> usize {
        self.tensor.numel() * self.tensor.kind().elt_size_in_bytes()
    }
}

fn to_host(t: &Tensor, path: &Path) -> Result<HostTensor, WeightsError> {
    let t = t.detach().to_device(Device::Cpu).contiguous();
    let dtype = match t.kind() {
        Kind::Float => Dtype::F32,
        Kind::Double => Dtype::F64,
        Kind::Int64 => Dtype::I64,
        other => {
            return Err(WeightsError::Dtype {
                path: path.to_owned(),
                name: String::new(),
                dtype: format!("{other:?}"),
            });
        }
    };
    let shape = t
        .size()
        .iter()
        .map(|&d| usize::try_from(d).unwrap_or(0))
        .collect();
    Ok(HostTensor {
        dtype,
        shape,
        tensor: t,
    })
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, fsync,
/// rename, fsync of the folder. A reader sees the old file or the new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), WeightsError> {
    write_atomic_by(path, |tmp| {
        File::create(tmp)
            .and_then(|mut f| f.write_all(bytes))
            .map_err(|source| WeightsError::Io {
                path: path.to_owned(),
                source,
            })
    })
}

/// [`write_atomic`] with the temporary file written by `write`, which is given
/// its path and creates it.
fn write_atomic_by(
    path: &Path,
    write: impl FnOnce(&Path) -> Result<(), WeightsError>,
) -> Result<(), WeightsError> {
    let io = |source| WeightsError::Io {
        path: path.to_owned(),
        source,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let written = write(&tmp).and_then(|()| {
        OpenOptions::new()
            .write(true)
            .open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(io)
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // Persist the rename; some file systems refuse to open folders, which is fine.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Serialises named tensors (any device) with string metadata and writes them
/// atomically.
pub fn write_tensors(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: HashMap<String, String>,
) -> Result<(), WeightsError> {
    let host = tensors
        .iter()
        .map(|(name, t)| {
            to_host(t, path)
                .map(|h| (name.clone(), h))
                .map_err(|e| match e {
                    WeightsError::Dtype { path, dtype, .. } => WeightsError::Dtype {
                        path,
                        name: name.clone(),
                        dtype,
                    },
                    other => other,
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let metadata = (!metadata.is_empty()).then_some(metadata);
    // Streamed from the tensors' own memory: no copy of the whole file.
    write_atomic_by(path, |tmp| {
        let views = host.iter().map(|(n, h)| (n.as_str(), h));
        safetensors::tensor::serialize_to_file(views, &metadata, tmp).map_err(|e| match e {
            SafeTensorError::IoError(source) => WeightsError::Io {
                path: path.to_owned(),
                source,
            },
            other => WeightsError::Format {
                path: path.to_owned(),
                message: other.to_string(),
            },
        })
    })
}

/// Named CPU tensors and string metadata of a safetensors file.
pub type TensorFile = (HashMap<String, Tensor>, HashMap<String, String>);

/// Reads every tensor of a safetensors file onto the CPU, with its metadata.
pub fn read_tensors(path: &Path) -> Result<TensorFile, WeightsError> {
    let bytes = std::fs::read(path).map_err(|source| WeightsError::Io {
        path: path.to_owned(),
        source,
    })?;
    let format = |e: safetensors::SafeTensorError| WeightsError::Format {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(format)?;
    let metadata = meta.metadata().clone().unwrap_or_default();
    let st = SafeTensors::deserialize(&bytes).map_err(format)?;
    let mut out = HashMap::new();
    for (name, view) in st.tensors() {
        let kind = match view.dtype() {
            Dtype::F32 => Kind::Float,
            Dtype::F64 => Kind::Double,
            Dtype::F16 => Kind::Half,
            Dtype::BF16 => Kind::BFloat16,
            Dtype::I64 => Kind::Int64,
            Dtype::I32 => Kind::Int,
            other => {
                return Err(WeightsError::Dtype {
                    path: path.to_owned(),
                    name,
                    dtype: format!("{other:?}"),
                });
            }
        };
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        let t = Tensor::f_from_data_size(view.data(), &shape, kind).map_err(|source| {
            WeightsError::Torch {
                path: path.to_owned(),
                source,
            }
        })?;
        out.insert(name, t);
    }
    Ok((out, metadata))
}

/// Saves the network's parameters under their state-dict names, with the
/// network config in the metadata and as JSON beside it (`<stem>.json`), and
/// the block list of a network other than the reference in the metadata
/// ([`NETWORK_KEY`]).
pub fn save(net: &Net, path: &Path) -> Result<(), WeightsError> {
    let tensors: Vec<(String, Tensor)> = net
        .named_parameters()
        .into_iter()
        .map(|(n, t)| (n.to_owned(), t.shallow_clone()))
        .collect();
    let config = serde_json::to_string_pretty(net.config()).unwrap_or_default();
    let mut metadata = HashMap::from([(NET_CONFIG_KEY.to_owned(), config.clone())]);
    if let Some(network) = &net.architecture().network
        && let Ok(json) = serde_json::to_string(network)
    {
        metadata.insert(NETWORK_KEY.to_owned(), json);
    }
    write_tensors(path, &tensors, metadata)?;
    write_atomic(&path.with_extension("json"), config.as_bytes())
}

/// Copies the parameters found by `find` (state-dict names) into the network,
/// checking every shape.
pub fn assign(
    net: &Net,
    path: &Path,
    find: &dyn Fn(&str) -> Option<Tensor>,
) -> Result<(), WeightsError> {
    for (name, param) in net.named_parameters() {
        let src = find(name).ok_or_else(|| WeightsError::Missing {
            path: path.to_owned(),
            name: name.to_owned(),
        })?;
        if src.size() != param.size() {
            return Err(WeightsError::Shape {
                path: path.to_owned(),
                name: name.to_owned(),
                found: src.size(),
                expected: param.size(),
            });
        }
        let src = src.to_kind(param.kind()).to_device(param.device());
        tch::no_grad(|| param.shallow_clone().copy_(&src));
    }
    Ok(())
}

/// Loads weights saved by [`save`] (or a converted PyTorch state dict) into
/// the network. Extra tensors are ignored; missing or misshapen ones are errors.
pub fn load(net: &Net, path: &Path) -> Result<(), WeightsError> {
    let (tensors, _) = read_tensors(path)?;
    assign(net, path, &|name| {
        tensors.get(name).map(Tensor::shallow_clone)
    })
}

/// The network config stored in a weights file, if it has one.
pub fn stored_config(path: &Path) -> Result<Option<NetConfig>, WeightsError> {
    let (_, metadata) = read_tensors(path)?;
    Ok(metadata
        .get(NET_CONFIG_KEY)
        .and_then(|s| serde_json::from_str(s).ok()))
}

/// The block list stored in a weights file ([`NETWORK_KEY`]), if it has one
/// (none for the reference network).
pub fn stored_network(path: &Path) -> Result<Option<NetworkSpec>, WeightsError> {
    let (_, metadata) = read_tensors(path)?;
    Ok(metadata
        .get(NETWORK_KEY)
        .and_then(|s| serde_json::from_str(s).ok()))
}
