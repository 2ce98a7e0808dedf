//! Adam and SGD with momentum on plain tensors, following PyTorch's
//! single-tensor formulas operation by operation, with their state exposed so a
//! checkpoint can save and restore it (tch's `nn::Optimizer` hides its state).

use spikecv_common::experiment::sections::OptimizerKind;
use tch::Tensor;

/// Adam's first-moment decay (PyTorch default).
pub const BETA1: f64 = 0.9;
/// Adam's second-moment decay (PyTorch default).
pub const BETA2: f64 = 0.999;
/// Adam's denominator epsilon (PyTorch default).
pub const EPS: f64 = 1e-8;

/// An optimiser over a fixed, ordered list of parameters.
#[derive(Debug)]
pub struct Optimizer {
    kind: OptimizerKind,
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
            lr,
            momentum,
            step: 0,
            first,
            second,
        }
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

    /// Clears the gradients of `params`.
    pub fn zero_grad(params: &[&Tensor]) {
        for p in params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.detach_().zero_();
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
                let step_size = self.lr / bias_correction1;
                let bias_correction2_sqrt = bias_correction2.sqrt();
                for ((p, m), v) in params.iter().zip(&mut self.first).zip(&mut self.second) {
                    let g = p.grad();
                    if !g.defined() {
                        continue;
                    }
                    // exp_avg.lerp_(grad, 1 - beta1)
                    let _ = m.lerp_(&g, 1.0 - BETA1);
                    // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                    let _ = v.g_mul_scalar_(BETA2).addcmul_(&g, &(&g * (1.0 - BETA2)));
                    // denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
                    let denom = (v.sqrt() / bias_correction2_sqrt) + EPS;
                    // param.addcdiv_(exp_avg, denom, value=-step_size)
                    let mut p = p.shallow_clone();
                    let _ = p.addcdiv_(&(&*m * -step_size), &denom);
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
