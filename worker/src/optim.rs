//! Adam and SGD with momentum on plain tensors, following PyTorch's formulas
//! operation by operation, with their state exposed so a checkpoint can save
//! and restore it (tch's `nn::Optimizer` hides its state).
//!
//! Adam runs as PyTorch's default CUDA Adam does, through libtorch's foreach
//! operations (`_multi_tensor_adam`: 7 operations per step whatever the number
//! of parameters, [`AdamKernels::Foreach`]); on the CPU libtorch runs each of
//! them as a loop of the single-tensor operations PyTorch's default CPU Adam
//! (`_single_tensor_adam`) calls, so the results are those of
//! [`AdamKernels::PerTensor`] bit for bit (`tests::foreach_adam_equals_the_per_tensor_path`).
//! Gradients are set to none between steps, as `zero_grad()` does by default.

mod foreach;

use spikecv_common::experiment::sections::OptimizerKind;
use tch::Tensor;

use self::foreach::{AdamStep, AdamTensors};

/// Adam's first-moment decay (PyTorch default).
pub const BETA1: f64 = 0.9;
/// Adam's second-moment decay (PyTorch default).
pub const BETA2: f64 = 0.999;
/// Adam's denominator epsilon (PyTorch default).
pub const EPS: f64 = 1e-8;

/// How an Adam step is issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AdamKernels {
    /// libtorch's `_foreach_` operations over all parameters at once
    /// (PyTorch's `_multi_tensor_adam`, its default on CUDA).
    #[default]
    Foreach,
    /// About 9 operations per parameter (PyTorch's `_single_tensor_adam`, its
    /// default on the CPU).
    PerTensor,
}

/// An optimiser over a fixed, ordered list of parameters.
#[derive(Debug)]
pub struct Optimizer {
    kind: OptimizerKind,
    adam_kernels: AdamKernels,
    lr: f64,
    momentum: f64,
    /// Steps taken so far (Adam's `step`; SGD counts too).
    step: u64,
    /// Per parameter: Adam's `exp_avg` / SGD's momentum buffer.
    first: Vec<Tensor>,
    /// Per parameter: Adam's `exp_avg_sq` (unused by SGD).
    second: Vec<Tensor>,
}

/// Saved optimiser state could not be restored.
#[derive(Debug, thiserror::Error)]
pub enum OptimStateError {
    /// A state tensor is missing.
    #[error("optimizer state {name} is missing")]
    Missing {
        /// The tensor's name.
        name: String,
    },
    /// A state tensor has the wrong shape.
    #[error("optimizer state {name} has shape {found:?}, expected {expected:?}")]
    Shape {
        /// The tensor's name.
        name: String,
        /// Its shape in the file.
        found: Vec<i64>,
        /// The parameter's shape.
        expected: Vec<i64>,
    },
}

impl Optimizer {
    /// A fresh optimiser for `params` (zeroed state, step 0).
    pub fn new(kind: OptimizerKind, lr: f64, momentum: f64, params: &[&Tensor]) -> Self {
        let zeros = |p: &&Tensor| p.detach().zeros_like();
        let first = params.iter().map(zeros).collect();
        let second = match kind {
            OptimizerKind::Adam => params.iter().map(zeros).collect(),
            OptimizerKind::Sgd => Vec::new(),
        };
        Self {
            kind,
            adam_kernels: AdamKernels::default(),
            lr,
            momentum,
            step: 0,
            first,
            second,
        }
    }

    /// Chooses how Adam's steps are issued ([`AdamKernels::Foreach`] when
    /// built; SGD ignores it).
    pub fn set_adam_kernels(&mut self, kernels: AdamKernels) {
        self.adam_kernels = kernels;
    }

    /// How Adam's steps are issued.
    pub fn adam_kernels(&self) -> AdamKernels {
        self.adam_kernels
    }

    /// The current learning rate.
    pub fn lr(&self) -> f64 {
        self.lr
    }

    /// Changes the learning rate (decay schedules).
    pub fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// Clears the gradients of `params`: sets them to none, as PyTorch's
    /// `zero_grad()` does by default (the next backward writes each gradient
    /// afresh: no zeroing pass, no addition to zeros). Should the shim fail, a
    /// gradient is zeroed instead.
    pub fn zero_grad(params: &[&Tensor]) {
        for p in params {
            if p.grad().defined() && foreach::set_grad_to_none(p).is_err() {
                let _ = p.grad().detach_().zero_();
            }
        }
    }

    /// Updates `params` (same order as at construction) from their gradients.
    /// Parameters without a gradient are skipped, as PyTorch does.
    pub fn step(&mut self, params: &[&Tensor]) {
        self.step += 1;
        let step = self.step as f64;
        tch::no_grad(|| match self.kind {
            OptimizerKind::Adam => {
                let bias_correction1 = 1.0 - BETA1.powf(step);
                let bias_correction2 = 1.0 - BETA2.powf(step);
                let constants = AdamStep {
                    beta1: BETA1,
                    beta2: BETA2,
                    eps: EPS,
                    step_size: self.lr / bias_correction1,
                    bias_correction2_sqrt: bias_correction2.sqrt(),
                };
                match self.adam_kernels {
                    AdamKernels::Foreach => self.adam_foreach(params, constants),
                    AdamKernels::PerTensor => self.adam_per_tensor(params, constants),
                }
            }
            OptimizerKind::Sgd => {
                let first_step = self.step == 1;
                for (p, buf) in params.iter().zip(&mut self.first) {
                    let g = p.grad();
                    if !g.defined() {
                        continue;
                    }
                    if first_step {
                        // buf = grad.clone()
                        buf.copy_(&g);
                    } else {
                        // buf.mul_(momentum).add_(grad)
                        let _ = buf.g_mul_scalar_(self.momentum).g_add_(&g);
                    }
                    // param.add_(buf, alpha=-lr)
                    let mut p = p.shallow_clone();
                    let _ = p.g_add_(&(&*buf * -self.lr));
                }
            }
        });
    }

    /// Adam's step as `_single_tensor_adam` issues it.
    fn adam_per_tensor(&mut self, params: &[&Tensor], c: AdamStep) {
        for ((p, m), v) in params.iter().zip(&mut self.first).zip(&mut self.second) {
            let g = p.grad();
            if !g.defined() {
                continue;
            }
            // exp_avg.lerp_(grad, 1 - beta1)
            let _ = m.lerp_(&g, 1.0 - c.beta1);
            // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            let _ = v
                .g_mul_scalar_(c.beta2)
                .addcmul_(&g, &(&g * (1.0 - c.beta2)));
            // denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
            let denom = (v.sqrt() / c.bias_correction2_sqrt) + c.eps;
            // param.addcdiv_(exp_avg, denom, value=-step_size)
            let mut p = p.shallow_clone();
            let _ = p.addcdiv_(&(&*m * -c.step_size), &denom);
        }
    }

    /// Adam's step as `_multi_tensor_adam` issues it, over the parameters
    /// that have a gradient.
    ///
    /// # Panics
    /// On a libtorch failure, as tch's infallible calls do (callers guard).
    fn adam_foreach(&mut self, params: &[&Tensor], c: AdamStep) {
        let grads: Vec<Tensor> = params.iter().map(|p| p.grad()).collect();
        let mut lists = AdamTensors {
            params: Vec::with_capacity(params.len()),
            grads: Vec::with_capacity(params.len()),
            exp_avgs: Vec::with_capacity(params.len()),
            exp_avg_sqs: Vec::with_capacity(params.len()),
        };
        let with_grad = params.iter().zip(&grads).zip(&self.first).zip(&self.second);
        for (((p, g), m), v) in with_grad.filter(|(((_, g), _), _)| g.defined()) {
            lists.params.push(p);
            lists.grads.push(g);
            lists.exp_avgs.push(m);
            lists.exp_avg_sqs.push(v);
        }
        if lists.params.is_empty() {
            return;
        }
        if let Err(e) = foreach::adam(&lists, c) {
            panic!("Adam step through libtorch's foreach operations: {e}");
        }
    }

    /// The state tensors with stable names (`exp_avg.<param>`, `exp_avg_sq.<param>`
    /// for Adam; `momentum_buffer.<param>` for SGD), for a checkpoint.
    pub fn state_tensors<S: AsRef<str>>(&self, names: &[S]) -> Vec<(String, Tensor)> {
        let (first, second) = self.state_names();
        let mut out: Vec<(String, Tensor)> = names
            .iter()
            .zip(&self.first)
            .map(|(n, t)| (format!("{first}.{}", n.as_ref()), t.shallow_clone()))
            .collect();
        if let Some(second) = second {
            out.extend(
                names
                    .iter()
                    .zip(&self.second)
                    .map(|(n, t)| (format!("{second}.{}", n.as_ref()), t.shallow_clone())),
            );
        }
        out
    }

    /// Restores state saved by [`Optimizer::state_tensors`] and the step count.
    pub fn load_state<S: AsRef<str>>(
        &mut self,
        names: &[S],
        step: u64,
        find: &dyn Fn(&str) -> Option<Tensor>,
    ) -> Result<(), OptimStateError> {
        let (first, second) = self.state_names();
        let restore = |prefix: &str, slots: &mut Vec<Tensor>| -> Result<(), OptimStateError> {
            for (n, slot) in names.iter().zip(slots.iter_mut()) {
                let name = format!("{prefix}.{}", n.as_ref());
                let saved =
                    find(&name).ok_or_else(|| OptimStateError::Missing { name: name.clone() })?;
                if saved.size() != slot.size() {
                    return Err(OptimStateError::Shape {
                        name,
                        found: saved.size(),
                        expected: slot.size(),
                    });
                }
                tch::no_grad(|| slot.copy_(&saved));
            }
            Ok(())
        };
        restore(first, &mut self.first)?;
        if let Some(second) = second {
            restore(second, &mut self.second)?;
        }
        self.step = step;
        Ok(())
    }

    fn state_names(&self) -> (&'static str, Option<&'static str>) {
        match self.kind {
            OptimizerKind::Adam => ("exp_avg", Some("exp_avg_sq")),
            OptimizerKind::Sgd => ("momentum_buffer", None),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use tch::{Device, Kind};

    use super::*;

    fn bits(t: &Tensor) -> Vec<u32> {
        let t = t.contiguous();
        let n = t.numel();
        let mut values = vec![0f32; n];
        t.copy_data(&mut values, n);
        values.iter().map(|v| v.to_bits()).collect()
    }

    /// Parameters of a few shapes (a conv weight and bias, a linear weight),
    /// each with its own storage.
    fn params(seed: i64) -> Vec<Tensor> {
        crate::model::with_seed(seed, || {
            [vec![20, 2, 3, 3], vec![20], vec![200, 450], vec![19]]
                .into_iter()
                .map(|dims| {
                    Tensor::randn(dims.as_slice(), (Kind::Float, Device::Cpu))
                        .set_requires_grad(true)
                })
                .collect()
        })
    }

    /// Gives each parameter a random gradient (some entries exactly zero, a
    /// few negative zeros), as a backward would.
    fn set_grads(params: &[Tensor], step: i64) {
        for (i, p) in params.iter().enumerate() {
            let g = crate::model::with_seed(100 * step + i as i64, || {
                let g = Tensor::randn(p.size().as_slice(), (Kind::Float, Device::Cpu)) * 1e-2;
                let keep = Tensor::rand(p.size().as_slice(), (Kind::Float, Device::Cpu)).gt(0.1);
                g * keep.to_kind(Kind::Float)
            });
            let loss = (p * &g).sum(Kind::Float);
            loss.backward();
        }
    }

    #[test]
    fn foreach_adam_equals_the_per_tensor_path() {
        let (a, b) = (params(3), params(3));
        let (ra, rb): (Vec<&Tensor>, Vec<&Tensor>) = (a.iter().collect(), b.iter().collect());
        let mut foreach = Optimizer::new(OptimizerKind::Adam, 1e-3, 0.0, &ra);
        let mut per_tensor = Optimizer::new(OptimizerKind::Adam, 1e-3, 0.0, &rb);
        assert_eq!(foreach.adam_kernels(), AdamKernels::Foreach);
        per_tensor.set_adam_kernels(AdamKernels::PerTensor);
        for step in 0..5 {
            Optimizer::zero_grad(&ra);
            Optimizer::zero_grad(&rb);
            set_grads(&a, step);
            set_grads(&b, step);
            foreach.step(&ra);
            per_tensor.step(&rb);
            for (p, q) in a.iter().zip(&b) {
                assert_eq!(bits(p), bits(q), "parameter after step {step}");
            }
            let names = ["w1", "b1", "w2", "b2"];
            for ((n, s), (_, t)) in foreach
                .state_tensors(&names)
                .iter()
                .zip(per_tensor.state_tensors(&names).iter())
            {
                assert_eq!(bits(s), bits(t), "{n} after step {step}");
            }
        }
        assert_eq!(foreach.steps(), 5);
    }

    #[test]
    fn a_parameter_without_a_gradient_is_left_alone() {
        let a = params(4);
        let refs: Vec<&Tensor> = a.iter().collect();
        let mut adam = Optimizer::new(OptimizerKind::Adam, 1e-3, 0.0, &refs);
        set_grads(&a[..2], 0);
        let before = bits(&a[3]);
        adam.step(&refs);
        assert_eq!(bits(&a[3]), before);
        let state = adam.state_tensors(&["w1", "b1", "w2", "b2"]);
        assert!(
            state
                .iter()
                .all(|(n, t)| !n.ends_with("b2") || bits(t).iter().all(|&b| b == 0))
        );
    }

    #[test]
    fn zero_grad_sets_gradients_to_none() {
        let a = params(5);
        let refs: Vec<&Tensor> = a.iter().collect();
        set_grads(&a, 0);
        assert!(refs.iter().all(|p| p.grad().defined()));
        Optimizer::zero_grad(&refs);
        assert!(refs.iter().all(|p| !p.grad().defined()));
    }
}
