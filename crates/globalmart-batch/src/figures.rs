//! What a step did, in figures: recorded in `batch_run_steps`, counted for Prometheus and
//! logged in the guide's words ("Extracted: 15,234 transaction lines").

use std::time::Duration;

/// The figures of one step (an ETL table or an analytics job), or of one chunk of it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Figures {
    /// Rows read (realtime rows for the ETL, warehouse rows for the analytics).
    pub extracted: usize,
    /// Rows that came out of the transform.
    pub transformed: usize,
    /// Rows written (new facts; new or completed dimension versions; snapshot rows).
    pub loaded: usize,
    /// Rows skipped: facts loaded before, catalogue versions that change nothing.
    pub skipped: usize,
    /// How long the step took.
    pub duration: Duration,
}

impl Figures {
    /// Adds a chunk's figures (durations are measured for the whole step).
    pub fn add(&mut self, chunk: Figures) {
        self.extracted += chunk.extracted;
        self.transformed += chunk.transformed;
        self.loaded += chunk.loaded;
        self.skipped += chunk.skipped;
    }
}

/// 15234 as "15,234".
pub fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// "4m 32s" from a minute on, "3.2s" below.
pub fn human(duration: Duration) -> String {
    let seconds = duration.as_secs();
    if seconds >= 60 {
        format!("{}m {}s", seconds / 60, seconds % 60)
    } else {
        format!("{:.1}s", duration.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_grouped_by_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(15234), "15,234");
        assert_eq!(grouped(1234567), "1,234,567");
    }

    #[test]
    fn durations_read_like_the_guide() {
        assert_eq!(human(Duration::from_secs(272)), "4m 32s");
        assert_eq!(human(Duration::from_millis(3240)), "3.2s");
    }
}
