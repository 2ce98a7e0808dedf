//! Firing rates, the spiking network's vital signs: every LIF layer's spike
//! count over a pass, kept on the device and read back once.
//!
//! The forward passes ([`Net::forward_backward_tallied`],
//! [`Net::forward_fast_tallied`]) add each LIF layer's spikes per batch to a
//! [`SpikeTally`]: the fused LIF kernels inside the kernel (an integer slot
//! per layer, no other operation), the other paths by a reduction or two of
//! the layer's output; nothing waits for the device until [`SpikeTally::rates`]
//! reads the sums at the end of the pass. A layer's rate is its spikes divided
//! by neurons × time steps × samples: the mean spikes per neuron per step, in
//! [0, 1]. Counting reads the spikes (or the potentials) and writes nothing the
//! network uses, so training and evaluation results are unchanged bit for bit.
//!
//! [`Net::forward_backward_tallied`]: super::Net::forward_backward_tallied
//! [`Net::forward_fast_tallied`]: super::Net::forward_fast_tallied

use tch::{Device, Kind, Tensor};

use crate::model::Net;

/// Spike counts of a network's LIF layers over one pass (a training epoch, an
/// evaluation), summed on the device.
#[derive(Debug)]
pub struct SpikeTally {
    /// The LIF layers' names, in network order.
    names: Vec<String>,
    /// Neurons of each LIF layer (values of one sample's output at one step).
    neurons: Vec<i64>,
    /// Each layer's spike count so far (a `Double` scalar on the device).
    sums: Vec<Option<Tensor>>,
    /// Each pooled layer's sum of 2×2-pooled spikes so far: a quarter of the
    /// spikes under its windows (multiplied by four when read).
    windows: Vec<Option<Tensor>>,
    /// Each layer's spikes counted inside the fused LIF kernels so far (an
    /// int64 tensor, a slot per layer, on the device; made on first use).
    kernels: Option<Tensor>,
    /// Samples × time steps counted so far.
    slots: i64,
}

impl SpikeTally {
    /// An empty tally for `net`'s LIF layers.
    pub fn new(net: &Net) -> Self {
        let lif: Vec<_> = net
            .architecture()
            .layers
            .iter()
            .filter(|l| l.lif.is_some())
            .collect();
        Self {
            names: lif.iter().map(|l| l.name.clone()).collect(),
            neurons: lif.iter().map(|l| l.output_values).collect(),
            sums: lif.iter().map(|_| None).collect(),
            windows: lif.iter().map(|_| None).collect(),
            kernels: None,
            slots: 0,
        }
    }

    /// The int64 tensor (a slot per LIF layer, on `device`) the fused
    /// kernels add each layer's spikes to; zeros on first use. `None` when
    /// the tally is already kept on another device.
    pub(crate) fn kernel_counts(&mut self, device: Device) -> Option<&Tensor> {
        let layers = self.names.len() as i64;
        let counts = self
            .kernels
            .get_or_insert_with(|| Tensor::zeros([layers], (Kind::Int64, device)));
        (counts.device() == device).then_some(&*counts)
    }

    /// The LIF layers' names, in network order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Samples × time steps counted so far.
    pub fn slots(&self) -> i64 {
        self.slots
    }

    /// Counts a batch of `samples` samples over `steps` time steps (once per
    /// batch, whatever the layers).
    pub(crate) fn add_slots(&mut self, samples: i64, steps: i64) {
        self.slots += samples.max(0) * steps.max(0);
    }

    /// Adds `count`, a `Double` scalar of the `index`-th LIF layer's spikes in
    /// one batch (kept on its device: no wait), to the layer's sum.
    pub(crate) fn add(&mut self, index: usize, count: Tensor) {
        accumulate(self.sums.get_mut(index), &count.to_kind(Kind::Double));
    }

    /// Counts the spikes of the `index`-th LIF layer in one batch, whose
    /// output is `output` (the spikes, or with `pooled` the spikes pooled 2×2
    /// with stride 2) and whose potentials, left by its forward pass in the
    /// layer's time-folded `shape` (`[T·N, C, H, W]`), are `potentials`: a
    /// reduction over the output, kept on the device (no wait). An average
    /// pooling over whole windows keeps the sum (each window's mean of four
    /// 0/1 values is exact), so the pooled sum is added and multiplied by four
    /// when read. A last odd row or column is left out by the pooling: its
    /// spikes are counted from its potentials above the threshold (a thin
    /// edge, in one reduction; the layer's potentials are not read whole).
    pub(crate) fn count(&mut self, index: usize, layer: LayerOutput<'_>) {
        tch::no_grad(|| {
            let counted = layer.output.sum(Kind::Double);
            if !layer.pooled {
                return accumulate(self.sums.get_mut(index), &counted);
            }
            let edge = match edge_values(layer.potentials, layer.shape, layer.channels_last) {
                Edge::None => None,
                Edge::Values(edge) => Some(edge),
                // Not a pooled plane after all: every spike from the potentials.
                Edge::Unknown => {
                    let all = layer.potentials.gt(layer.vth).sum(Kind::Double);
                    return accumulate(self.sums.get_mut(index), &all);
                }
            };
            accumulate(self.windows.get_mut(index), &counted);
            if let Some(edge) = edge {
                let spikes = edge.gt(layer.vth).sum(Kind::Double);
                accumulate(self.sums.get_mut(index), &spikes);
            }
        })
    }

    /// Each LIF layer's mean spikes per neuron per time step, with its name,
    /// in network order: reads the sums back (one wait for the device). `None`
    /// when nothing was counted.
    ///
    /// # Panics
    /// When libtorch fails to read the sums (a device failure): callers run it
    /// guarded.
    pub fn rates(&self) -> Option<Vec<(String, f64)>> {
        if self.slots <= 0 || self.names.is_empty() {
            return None;
        }
        let device = (self.sums.iter().flatten().next())
            .or(self.kernels.as_ref())
            .map_or(Device::Cpu, Tensor::device);
        let layers = self.names.len();
        let mut sums: Vec<Tensor> = self
            .sums
            .iter()
            .chain(&self.windows)
            .map(|s| match s {
                Some(s) => s.reshape([1]),
                None => Tensor::zeros([1], (Kind::Double, device)),
            })
            .collect();
        match &self.kernels {
            Some(counts) => sums.push(counts.to_device(device).to_kind(Kind::Double)),
            None => sums.push(Tensor::zeros([layers as i64], (Kind::Double, device))),
        }
        let host = Tensor::cat(&sums, 0).to_device(Device::Cpu).contiguous();
        let mut read = vec![0f64; 3 * layers];
        host.copy_data(&mut read, 3 * layers);
        let (direct, rest) = read.split_at(layers);
        let (pooled, kernels) = rest.split_at(layers);
        let counts = (direct.iter().zip(pooled).zip(kernels)).map(|((d, w), k)| d + 4.0 * w + k);
        let slots = self.slots as f64;
        Some(
            self.names
                .iter()
                .zip(&self.neurons)
                .zip(counts)
                .map(|((name, &neurons), count)| {
                    let rate = count / (neurons.max(1) as f64 * slots);
                    (name.clone(), rate.clamp(0.0, 1.0))
                })
                .collect(),
        )
    }
}

/// What [`SpikeTally::count`] reads of a LIF layer's pass.
pub(crate) struct LayerOutput<'a> {
    /// The spikes, or with `pooled` the spikes pooled 2×2 with stride 2.
    pub output: &'a Tensor,
    /// The potentials the forward pass left, time-major.
    pub potentials: &'a Tensor,
    /// The layer's time-folded shape, `[T·N, C, H, W]` or `[T·N, F]`.
    pub shape: &'a [i64],
    /// The firing threshold.
    pub vth: f64,
    /// Whether the output is pooled.
    pub pooled: bool,
    /// Whether the potentials are stored `[T·N, H, W, C]`.
    pub channels_last: bool,
}

/// Adds `count` to a layer's sum (kept on its device).
fn accumulate(slot: Option<&mut Option<Tensor>>, count: &Tensor) {
    match slot {
        Some(Some(sum)) => {
            let _ = sum.g_add_(count);
        }
        Some(slot @ None) => *slot = Some(count.copy()),
        None => {}
    }
}

/// The potentials a 2×2 pooling of a layer leaves out.
enum Edge {
    /// Every row and column is under a window.
    None,
    /// The last row (odd height) and the last column above it (odd width),
    /// gathered into one small tensor.
    Values(Tensor),
    /// The shape is not `[B, C, H, W]` of these potentials: count them all
    /// (and not the pooled output).
    Unknown,
}

/// The potentials of `shape` `[B, C, H, W]` (stored `[B, H, W, C]` when
/// `channels_last`) that a 2×2 pooling leaves out.
fn edge_values(potentials: &Tensor, shape: &[i64], channels_last: bool) -> Edge {
    let &[b, c, height, width] = shape else {
        return Edge::Unknown;
    };
    if shape.iter().product::<i64>() != potentials.numel() as i64 {
        return Edge::Unknown;
    }
    // The row and column axes of the stored order.
    let (planes, rows, cols) = if channels_last {
        (potentials.view([b, height, width, c]), 1, 2)
    } else {
        (potentials.view(shape), 2, 3)
    };
    let even_rows = height - height % 2;
    let mut parts = Vec::new();
    if height % 2 == 1 {
        parts.push(planes.narrow(rows, height - 1, 1).reshape([-1]));
    }
    if width % 2 == 1 && even_rows > 0 {
        let column = planes.narrow(rows, 0, even_rows).narrow(cols, width - 1, 1);
        parts.push(column.reshape([-1]));
    }
    match parts.len() {
        0 => Edge::None,
        1 => Edge::Values(parts.remove(0)),
        _ => Edge::Values(Tensor::cat(&parts, 0)),
    }
}
