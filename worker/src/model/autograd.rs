//! The network under autograd: the reference implementation the fast paths
//! are checked against, and the reference's per-step loop.

use tch::{Kind, Tensor};

use crate::lif::{LifParams, rate};
use crate::model::Net;
use crate::model::rates::SpikeTally;

/// LIF over a time-folded `[T·N, ...]` tensor; returns the same layout.
fn spike_folded(lif: &LifParams, h: &Tensor, t: i64, train: bool) -> Tensor {
    let size = h.size();
    let mut split = vec![t, size.first().copied().unwrap_or(0) / t.max(1)];
    split.extend_from_slice(size.get(1..).unwrap_or_default());
    lif.run(&h.reshape(split.as_slice()), train)
        .reshape(size.as_slice())
}

impl Net {
    /// The reference implementation: the whole network under autograd, the LIF
    /// layers through [`LifParams::run`] (one small graph per time step; its
    /// backward is quadratic in T). Kept to check the fast paths against and as
    /// the benchmarks' baseline. With `train` the spikes carry the surrogate
    /// gradient.
    pub fn forward_autograd(&self, xs: &Tensor, train: bool) -> Tensor {
        self.forward_autograd_counting(xs, train, None)
    }

    /// [`Net::forward_autograd`], counting every LIF layer's spikes (the sum
    /// of its outputs) into `tally` when given.
    pub(crate) fn forward_autograd_counting(
        &self,
        xs: &Tensor,
        train: bool,
        mut tally: Option<&mut SpikeTally>,
    ) -> Tensor {
        let size = xs.size();
        let [n, c, x, y, t] = size[..] else {
            return xs.shallow_clone();
        };
        if let Some(tally) = tally.as_deref_mut() {
            tally.add_slots(n, t);
        }
        let mut lif_index = 0;
        // [N, C, X, Y, T] → [T·N, C, X, Y]: time folded into the batch.
        let mut h = xs.permute([4, 0, 1, 2, 3]).reshape([t * n, c, x, y]);
        for (index, layer) in self.arch.layers.iter().enumerate() {
            h = self.apply(index, &h);
            if let Some(lif) = &layer.lif {
                h = spike_folded(lif, &h, t, train);
                if let Some(tally) = tally.as_deref_mut() {
                    tally.add(lif_index, tch::no_grad(|| h.detach().sum(Kind::Double)));
                }
                lif_index += 1;
            }
        }
        rate(&h.reshape([t, n, -1]))
    }

    /// The same network written the reference's way: every layer called once per
    /// time step. Slow; kept to check that folding time into the batch changes
    /// nothing.
    pub fn forward_per_step(&self, xs: &Tensor, train: bool) -> Tensor {
        let t = xs.size().get(4).copied().unwrap_or(0);
        let mut steps: Vec<Tensor> = (0..t).map(|i| xs.select(4, i)).collect();
        for (index, layer) in self.arch.layers.iter().enumerate() {
            steps = steps.iter().map(|h| self.apply(index, h)).collect();
            if let Some(lif) = &layer.lif {
                let spikes = lif.run(&Tensor::stack(&steps, 0), train);
                steps = (0..t).map(|i| spikes.select(0, i)).collect();
            }
        }
        rate(&Tensor::stack(&steps, 0))
    }
}
