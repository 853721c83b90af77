//! Key choosers modelled on YCSB: a tiny fast random number generator, the Gray et al. zipfian
//! generator YCSB uses (theta 0.99), its scrambled form (hot keys spread over the key space), uniform
//! keys, and "latest" (skewed towards the most recently inserted keys, for workload D).

/// xorshift64* generator: a few nanoseconds per number, plenty for choosing keys.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (any value; zero is remapped).
    pub fn new(seed: u64) -> Self {
        Rng(splitmix(seed) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A uniform float in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform integer in [0, n); n must be positive.
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
}

fn splitmix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// YCSB's default skew.
pub const ZIPF_THETA: f64 = 0.99;

/// Zipfian ranks in [0, n): rank 0 is the most popular (Gray et al., "Quickly generating
/// billion-record synthetic databases", as in YCSB's `ZipfianGenerator`).
#[derive(Clone, Debug)]
pub struct Zipf {
    n: u64,
    theta: f64,
    alpha: f64,
    zetan: f64,
    eta: f64,
}

impl Zipf {
    /// A generator over `n` ranks (n >= 1) with skew `theta` in (0, 1).
    pub fn new(n: u64, theta: f64) -> Self {
        assert!(
            n >= 1 && theta > 0.0 && theta < 1.0,
            "zipf needs n >= 1 and 0 < theta < 1"
        );
        let zetan = zeta(n, theta);
        let zeta2 = zeta(2.min(n), theta);
        let eta = (1.0 - (2.0 / n as f64).powf(1.0 - theta)) / (1.0 - zeta2 / zetan);
        Zipf {
            n,
            theta,
            alpha: 1.0 / (1.0 - theta),
            zetan,
            eta,
        }
    }

    /// The number of ranks.
    pub fn len(&self) -> u64 {
        self.n
    }

    /// The next rank.
    pub fn sample(&self, rng: &mut Rng) -> u64 {
        let u = rng.next_f64();
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + 0.5f64.powf(self.theta) {
            return 1.min(self.n - 1);
        }
        let rank = (self.n as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        rank.min(self.n - 1)
    }
}

fn zeta(n: u64, theta: f64) -> f64 {
    (1..=n).map(|i| 1.0 / (i as f64).powf(theta)).sum()
}

/// FNV-1a of a rank's bytes: spreads popular ranks over the key space like YCSB's scrambled zipfian.
pub fn fnv64(value: u64) -> u64 {
    value
        .to_le_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| {
            (hash ^ *byte as u64).wrapping_mul(0x0100_0000_01b3)
        })
}

/// How keys are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Distribution {
    Uniform,
    Zipfian,
}

/// Draws item numbers in [0, n) by a distribution.
#[derive(Clone, Debug)]
pub enum KeyChooser {
    Uniform(u64),
    Zipfian(Zipf),
}

impl KeyChooser {
    /// A chooser over `n` items.
    pub fn new(distribution: Distribution, n: u64) -> Self {
        match distribution {
            Distribution::Uniform => KeyChooser::Uniform(n),
            Distribution::Zipfian => KeyChooser::Zipfian(Zipf::new(n, ZIPF_THETA)),
        }
    }

    /// The next item number.
    pub fn next(&self, rng: &mut Rng) -> u64 {
        match self {
            KeyChooser::Uniform(n) => rng.below(*n),
            KeyChooser::Zipfian(zipf) => fnv64(zipf.sample(rng)) % zipf.len(),
        }
    }

    /// An item number skewed towards `latest` (the newest item): `latest - rank` (workload D).
    pub fn latest(&self, rng: &mut Rng, latest: u64) -> u64 {
        let rank = match self {
            KeyChooser::Uniform(n) => rng.below(*n),
            KeyChooser::Zipfian(zipf) => zipf.sample(rng),
        };
        latest.saturating_sub(rank)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_stays_in_range_and_favours_low_ranks() {
        let zipf = Zipf::new(1000, ZIPF_THETA);
        let mut rng = Rng::new(7);
        let mut counts = vec![0u32; 1000];
        for _ in 0..200_000 {
            counts[zipf.sample(&mut rng) as usize] += 1;
        }
        assert!(counts[0] > counts[1] && counts[1] > counts[10] && counts[10] > counts[500]);
        // Rank 0 draws about 1/zeta(1000) of the samples (~13%).
        let share = counts[0] as f64 / 200_000.0;
        assert!((0.10..0.17).contains(&share), "rank 0 share {share}");
    }

    #[test]
    fn zipf_of_one_item_is_always_zero() {
        let zipf = Zipf::new(1, ZIPF_THETA);
        let mut rng = Rng::new(1);
        assert!((0..100).all(|_| zipf.sample(&mut rng) == 0));
    }

    #[test]
    fn scrambled_zipfian_spreads_hot_keys_but_stays_in_range() {
        let chooser = KeyChooser::new(Distribution::Zipfian, 100_000);
        let mut rng = Rng::new(3);
        let keys: Vec<u64> = (0..10_000).map(|_| chooser.next(&mut rng)).collect();
        assert!(keys.iter().all(|k| *k < 100_000));
        let distinct: std::collections::HashSet<_> = keys.iter().collect();
        assert!(
            distinct.len() > 1000 && distinct.len() < 9000,
            "{}",
            distinct.len()
        );
    }

    #[test]
    fn uniform_and_latest_choosers() {
        let mut rng = Rng::new(5);
        let uniform = KeyChooser::new(Distribution::Uniform, 10);
        assert!((0..1000).all(|_| uniform.next(&mut rng) < 10));
        let latest = KeyChooser::new(Distribution::Zipfian, 1000);
        let picks: Vec<u64> = (0..1000).map(|_| latest.latest(&mut rng, 5000)).collect();
        assert!(picks.iter().all(|k| *k <= 5000 && *k > 3999));
        assert!(picks.iter().filter(|k| **k == 5000).count() > 50);
    }

    #[test]
    fn rng_floats_are_in_unit_interval() {
        let mut rng = Rng::new(0);
        assert!(
            (0..10_000)
                .map(|_| rng.next_f64())
                .all(|x| (0.0..1.0).contains(&x))
        );
    }
}
