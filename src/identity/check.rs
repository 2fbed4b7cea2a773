//! The check letter of each group of a peer id.
//!
//! Syncthing uses Luhn mod 32 per group. Luhn misses one adjacent swap (the letters of value
//! 0 and 31, `A7` ↔ `7A`, like `09` ↔ `90` in base 10). We use a weighted sum in GF(32)
//! instead, as cheap and with no such gap: the letters' 5-bit values `v1..vn` are weighted by
//! powers of a generator `α` of GF(32) (the field GF(2)[x] / (x⁵ + x² + 1)), and the check letter
//! is `c = v1·αⁿ + v2·αⁿ⁻¹ + … + vn·α¹`. Because the weights `α¹ … αⁿ` (and the check's own
//! weight `α⁰ = 1`) are distinct and non-zero while `n < 31`:
//! - a single wrong letter changes the sum by `e·αⁱ ≠ 0`: always caught;
//! - swapping two adjacent different letters changes it by `(a − b)·(αⁱ − αⁱ⁺¹) ≠ 0`: always
//!   caught, the check letter included.

/// Longest group the guarantees above hold for (the order of `α` is 31).
pub const MAX_GROUP: usize = 30;

/// `v·α` in GF(32) with the polynomial x⁵ + x² + 1 (0b100101), which is primitive: `α` has
/// order 31.
fn times_alpha(v: u8) -> u8 {
    let v = v << 1;
    if v & 0b10_0000 != 0 { v ^ 0b10_0101 } else { v }
}

/// The check value of `values` (each < 32), by Horner's rule: `c = (…((v1)·α + v2)·α … + vn)·α`.
pub fn check_value(values: impl IntoIterator<Item = u8>) -> u8 {
    values
        .into_iter()
        .fold(0, |acc, v| times_alpha(acc ^ (v & 31)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpha_generates_the_whole_field() {
        let mut seen = std::collections::HashSet::new();
        let mut v = 1u8;
        for _ in 0..31 {
            assert!(seen.insert(v), "α has order below 31: {v} came back");
            v = times_alpha(v);
        }
        assert_eq!(v, 1, "α³¹ = 1");
        assert_eq!(seen.len(), 31);
    }

    /// Every single substitution and every adjacent swap in every group of 13 letters we
    /// tried, check letter included, changes the check (a test that Luhn mod 32 fails on
    /// `A7` ↔ `7A`).
    #[test]
    fn every_substitution_and_adjacent_swap_is_caught() {
        for seed in 0..64u32 {
            let mut group: Vec<u8> = (0..13u32)
                .map(|i| ((i * 7 + seed * 13) % 32) as u8)
                .collect();
            group[seed as usize % 13] = 0;
            group[(seed as usize + 1) % 13] = 31;
            let check = check_value(group.iter().copied());
            let valid = |g: &[u8]| check_value(g[..13].iter().copied()) == g[13];
            let mut full = group.clone();
            full.push(check);
            assert!(valid(&full));
            for i in 0..14 {
                for e in 1..32u8 {
                    let mut typo = full.clone();
                    typo[i] ^= e;
                    assert!(!valid(&typo), "typo at {i} missed in {full:?}");
                }
                if i < 13 && full[i] != full[i + 1] {
                    let mut swapped = full.clone();
                    swapped.swap(i, i + 1);
                    assert!(!valid(&swapped), "swap at {i} missed in {full:?}");
                }
            }
        }
    }
}
