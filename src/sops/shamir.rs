//! Shamir secret sharing over GF(2^8), as sops splits a data key across key groups.
//!
//! A share is 33 bytes: the 32 evaluations of one random polynomial per key byte at
//! x = group index + 1, then x itself. The key is recovered by Lagrange interpolation at 0.

use rand::RngCore;
use zeroize::Zeroizing;

use crate::secret::DataKey;

/// Multiplication in GF(2^8) with the AES polynomial x^8+x^4+x^3+x+1. Branch-free in the
/// data so timing does not depend on key bytes.
fn mul(mut a: u8, mut b: u8) -> u8 {
    let mut product = 0u8;
    for _ in 0..8 {
        product ^= a & 0u8.wrapping_sub(b & 1);
        let carry = 0u8.wrapping_sub(a >> 7);
        a = (a << 1) ^ (0x1b & carry);
        b >>= 1;
    }
    product
}

/// Inverse by exponentiation (a^254); `inv(0)` is 0 and never used.
fn inv(a: u8) -> u8 {
    let mut result = 1u8;
    let mut base = a;
    let mut exp = 254u8;
    while exp > 0 {
        if exp & 1 == 1 {
            result = mul(result, base);
        }
        base = mul(base, base);
        exp >>= 1;
    }
    result
}

/// Splits `key` into `shares` shares of which any `threshold` recover it.
pub(crate) fn split(key: &DataKey, shares: u8, threshold: u8) -> Vec<Zeroizing<Vec<u8>>> {
    let mut out: Vec<Zeroizing<Vec<u8>>> = (1..=shares)
        .map(|_| Zeroizing::new(Vec::with_capacity(33)))
        .collect();
    let mut coeffs = Zeroizing::new(vec![0u8; usize::from(threshold.saturating_sub(1))]);
    for &secret in key.expose() {
        rand::rngs::OsRng.fill_bytes(&mut coeffs);
        for (i, share) in out.iter_mut().enumerate() {
            let x = u8::try_from(i + 1).unwrap_or(u8::MAX);
            // Horner's rule from the highest coefficient down to the secret.
            let y = coeffs.iter().rev().fold(0u8, |acc, &c| mul(acc, x) ^ c);
            share.push(mul(y, x) ^ secret);
        }
    }
    for (i, share) in out.iter_mut().enumerate() {
        share.push(u8::try_from(i + 1).unwrap_or(u8::MAX));
    }
    out
}

/// Recombines shares (each 33 bytes, x in the last byte); `None` if they are malformed.
pub(crate) fn combine(shares: &[Zeroizing<Vec<u8>>]) -> Option<DataKey> {
    if shares.is_empty() || shares.iter().any(|s| s.len() != 33) {
        return None;
    }
    let xs: Vec<u8> = shares.iter().map(|s| s[32]).collect();
    if xs.contains(&0) || xs.iter().enumerate().any(|(i, x)| xs[..i].contains(x)) {
        return None;
    }
    let mut key = Zeroizing::new([0u8; 32]);
    for (byte, slot) in key.iter_mut().enumerate() {
        let mut acc = 0u8;
        for (i, share) in shares.iter().enumerate() {
            // Lagrange basis at 0: prod over j != i of x_j / (x_j - x_i); minus is xor.
            let mut basis = 1u8;
            for (j, &xj) in xs.iter().enumerate() {
                if i != j {
                    basis = mul(basis, mul(xj, inv(xj ^ xs[i])));
                }
            }
            acc ^= mul(share[byte], basis);
        }
        *slot = acc;
    }
    DataKey::from_slice(key.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_two_of_three() {
        let key = DataKey::generate();
        let shares = split(&key, 3, 2);
        for pair in [[0, 1], [0, 2], [1, 2]] {
            let picked = vec![shares[pair[0]].clone(), shares[pair[1]].clone()];
            assert_eq!(combine(&picked).unwrap().expose(), key.expose());
        }
        assert_ne!(combine(&shares[..1]).unwrap().expose(), key.expose());
    }

    #[test]
    fn field_inverse() {
        for a in 1..=255u8 {
            assert_eq!(mul(a, inv(a)), 1);
        }
    }
}
