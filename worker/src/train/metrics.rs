//! Classification metrics: predictions, accuracy and the confusion matrix.

/// Counts of `[true class][predicted class]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confusion {
    counts: Vec<Vec<u32>>,
}

impl Confusion {
    /// An all-zero matrix for `classes` classes.
    pub fn new(classes: usize) -> Self {
        Self {
            counts: vec![vec![0; classes]; classes],
        }
    }

    /// Records one prediction (out-of-range classes are ignored).
    pub fn add(&mut self, truth: usize, predicted: usize) {
        if let Some(c) = self
            .counts
            .get_mut(truth)
            .and_then(|row| row.get_mut(predicted))
        {
            *c += 1;
        }
    }

    /// Samples recorded.
    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().map(|&c| u64::from(c)).sum()
    }

    /// Samples on the diagonal.
    pub fn correct(&self) -> u64 {
        self.counts
            .iter()
            .enumerate()
            .map(|(i, row)| u64::from(row[i]))
            .sum()
    }

    /// Fraction of correct predictions (0 when empty).
    pub fn accuracy(&self) -> f64 {
        let total = self.total();
        if total == 0 {
            0.0
        } else {
            self.correct() as f64 / total as f64
        }
    }

    /// The matrix, `[true][predicted]`.
    pub fn into_rows(self) -> Vec<Vec<u32>> {
        self.counts
    }

    /// The matrix, `[true][predicted]`.
    pub fn rows(&self) -> &[Vec<u32>] {
        &self.counts
    }
}

/// The predicted class of one output row: the first index of the largest rate,
/// as `torch.argmax` picks it (ties are common with spike counts).
pub fn predict(rates: &[f32]) -> usize {
    let mut best = 0;
    for (i, &r) in rates.iter().enumerate() {
        if r > rates[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_go_to_the_first_class() {
        assert_eq!(predict(&[0.0, 0.0, 0.0]), 0);
        assert_eq!(predict(&[0.1, 0.5, 0.5]), 1);
    }

    #[test]
    fn confusion_counts_and_accuracy() {
        let mut c = Confusion::new(3);
        c.add(0, 0);
        c.add(1, 2);
        c.add(2, 2);
        c.add(2, 2);
        assert_eq!(c.total(), 4);
        assert_eq!(c.correct(), 3);
        assert!((c.accuracy() - 0.75).abs() < 1e-12);
        assert_eq!(c.rows()[1], vec![0, 0, 1]);
    }
}
