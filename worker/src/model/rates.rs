//! Firing rates, the spiking network's vital signs: every LIF layer's spike
//! count over a pass, kept on the device and read back once.
//!
//! The forward passes ([`Net::forward_backward_tallied`],
//! [`Net::forward_fast_tallied`]) add one reduction per LIF layer per batch to
//! a [`SpikeTally`]; nothing waits for the device until [`SpikeTally::rates`]
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
            slots: 0,
        }
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

    /// Adds `count`, a scalar of the `index`-th LIF layer's spikes in one batch
    /// (kept on its device: no wait), to the layer's sum.
    pub(crate) fn add(&mut self, index: usize, count: Tensor) {
        let count = count.to_kind(Kind::Double);
        match self.sums.get_mut(index) {
            Some(Some(sum)) => {
                let _ = sum.g_add_(&count);
            }
            Some(slot @ None) => *slot = Some(count.copy()),
            None => {}
        }
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
        let device = self
            .sums
            .iter()
            .flatten()
            .next()
            .map_or(Device::Cpu, Tensor::device);
        let sums: Vec<Tensor> = self
            .sums
            .iter()
            .map(|s| match s {
                Some(s) => s.reshape([1]),
                None => Tensor::zeros([1], (Kind::Double, device)),
            })
            .collect();
        let host = Tensor::cat(&sums, 0).to_device(Device::Cpu).contiguous();
        let mut counts = vec![0f64; self.names.len()];
        host.copy_data(&mut counts, self.names.len());
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

/// The spikes of a LIF layer whose output is `output` (the spikes, or with
/// `pooled` the spikes pooled 2×2 with stride 2) and whose potentials, left by
/// its forward pass, are `potentials`: one reduction, on the device. An average
/// pooling over whole windows keeps the sum (each window's mean of four 0/1
/// values is exact): the pooled sum times four. A last odd row or column is
/// left out by the pooling; then the potentials above the threshold are
/// counted.
pub(crate) fn layer_spikes(output: &Tensor, potentials: &Tensor, vth: f64, pooled: bool) -> Tensor {
    tch::no_grad(|| {
        if !pooled {
            return output.sum(Kind::Double);
        }
        if whole_windows(output, potentials) {
            output.sum(Kind::Double) * 4.0
        } else {
            potentials.gt(vth).sum(Kind::Double)
        }
    })
}

/// Whether pooling 2×2 lost nothing: the pooled output holds a quarter of the
/// potentials' values (every row and column was under a window).
fn whole_windows(output: &Tensor, potentials: &Tensor) -> bool {
    output
        .numel()
        .checked_mul(4)
        .is_some_and(|n| n == potentials.numel())
}
