//! A/B rounds run interleaved (ours, theirs, ours, theirs …) so that drift
//! in the machine's load lands on both sides, each pair's ratio printed
//! beside the medians. Higher is better for both values (a rate).

#[derive(Default)]
pub struct Pairs {
    ours: Vec<f64>,
    theirs: Vec<f64>,
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

impl Pairs {
    pub fn push(&mut self, ours: f64, theirs: f64) {
        self.ours.push(ours);
        self.theirs.push(theirs);
    }

    pub fn ratios(&self) -> Vec<f64> {
        self.ours
            .iter()
            .zip(&self.theirs)
            .map(|(o, t)| o / t)
            .collect()
    }

    /// The median of the pairs' ratios.
    pub fn median_ratio(&self) -> f64 {
        median(self.ratios())
    }

    /// `label: pairs 1.02 0.98 …; median ours X unit, theirs Y unit, ratio R (N/M pairs ≥ 1.0)`.
    pub fn report(&self, label: &str, ours: &str, theirs: &str, unit: &str) {
        let ratios = self.ratios();
        let wins = ratios.iter().filter(|r| **r >= 1.0).count();
        let list: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
        println!("  {label}: pair ratios {}", list.join(" "));
        println!(
            "    median: {ours} {:.1} {unit}, {theirs} {:.1} {unit}, ratio {:.2} ({wins}/{} pairs >= 1.0)",
            median(self.ours.clone()),
            median(self.theirs.clone()),
            self.median_ratio(),
            ratios.len()
        );
    }
}
