//! Verification arithmetic from precomputed tables: `a·G + b·P` for SM2 and P-256.
//!
//! RustCrypto's `primeorder` curves multiply every point from scratch (256 doublings and 64
//! additions per scalar, two scalars per verification), which made host verification cost more than
//! the token's signature. But the generator never changes, and the appliance verifies each token key
//! after every signature it makes, so their multiples are worth computing once. With a table of
//! `j·2^(w·i)·P` for every w-bit window `i` and digit `j`, `k·P` is one mixed addition per window
//! and no doubling. The sum is kept in Jacobian coordinates, and the result is compared with the
//! signature's `r` without the final field inversion (`X = x·Z²`).
//!
//! Scope, and why it is safe:
//! - Only public values pass through here (signatures, digests, public keys), so the table lookups
//!   may depend on them. Nothing in this module ever sees a private key.
//! - The field arithmetic is RustCrypto's; only the tables and the textbook Jacobian mixed addition
//!   (madd-2007-bl) are ours. That addition is not complete: when it meets equal or opposite points
//!   it reports [`Exceptional`] and the caller verifies with RustCrypto instead.
//! - Tests compare every result with RustCrypto's own arithmetic and verification.

use elliptic_curve::bigint::{ArrayEncoding, U256};
use elliptic_curve::ff::{Field, PrimeField};
use elliptic_curve::sec1::ToEncodedPoint;
use elliptic_curve::{Curve, Scalar};
use primeorder::{AffinePoint, Double, PrimeCurveParams, ProjectivePoint};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, OnceLock, RwLock};

use ::sm2::elliptic_curve;

/// Window of the generator tables: 22 additions per multiplication, about 2.8 MiB per curve, built
/// in some 50 ms. Unoptimised (debug) builds take ten times as long, once in every test process, so
/// they use 8 bits (33 additions); the tests check every width against RustCrypto either way.
const GENERATOR_WINDOW: usize = if cfg!(debug_assertions) { 8 } else { 12 };
/// Window of a key's table: 33 additions per multiplication, about 264 KiB per key.
const KEY_WINDOW: usize = 8;
/// Keys with a table at once, per curve (at most about 33 MiB); the oldest gives way to a new one.
const KEY_TABLES: usize = 128;

/// The incomplete addition met equal or opposite points; verify another way.
#[derive(Debug, PartialEq, Eq)]
pub struct Exceptional;

/// A curve this module has tables for, with the few conversions the generic code needs.
pub trait Tabled: PrimeCurveParams + Curve<Uint = U256>
where
    ProjectivePoint<Self>: Double,
{
    /// The generator's table, built on first use.
    fn generator_table() -> Option<&'static Table<Self>>;
    /// The tables of prepared keys.
    fn key_tables() -> &'static KeyTables<Self>;
    /// Uncompressed SEC1 encoding.
    fn sec1(p: &AffinePoint<Self>) -> Vec<u8>;
    /// A field element from 32 big-endian bytes, if below p.
    fn field(be: [u8; 32]) -> Option<Self::FieldElement>;
}

macro_rules! tabled {
    ($curve:ty, $krate:ident) => {
        impl Tabled for $curve {
            fn generator_table() -> Option<&'static Table<Self>> {
                static G: OnceLock<Option<Table<$curve>>> = OnceLock::new();
                G.get_or_init(|| Table::new(&$krate::AffinePoint::GENERATOR, GENERATOR_WINDOW)).as_ref()
            }
            fn key_tables() -> &'static KeyTables<Self> {
                static K: OnceLock<KeyTables<$curve>> = OnceLock::new();
                K.get_or_init(KeyTables::default)
            }
            fn sec1(p: &AffinePoint<Self>) -> Vec<u8> {
                p.to_encoded_point(false).as_bytes().to_vec()
            }
            fn field(be: [u8; 32]) -> Option<Self::FieldElement> {
                Option::from(<Self::FieldElement as PrimeField>::from_repr(be.into()))
            }
        }
    };
}

tabled!(::sm2::Sm2, sm2);
tabled!(p256::NistP256, p256);

/// `j·2^(w·i)·P` for every window `i` and `1 <= j <= 2^(w-1)`, as affine (x, y), row by row. The
/// scalar is recoded into signed digits in `[-2^(w-1), 2^(w-1)]`, and a negative digit adds the
/// point with y negated, so a row holds half the multiples an unsigned window would need.
pub struct Table<C: PrimeCurveParams> {
    w: usize,
    points: Vec<(C::FieldElement, C::FieldElement)>,
}

impl<C: Tabled> Table<C>
where
    ProjectivePoint<C>: Double,
{
    /// Precomputes the multiples of `p` for windows of `w` bits (2..=12); `None` for the identity.
    pub fn new(p: &AffinePoint<C>, w: usize) -> Option<Self> {
        if bool::from(p.is_identity()) {
            return None;
        }
        let w = w.clamp(2, 12);
        let half = 1usize << (w - 1);
        let mut jac = Vec::with_capacity(rows(w) * half);
        let (mut bx, mut by) = coordinates::<C>(p);
        for _ in 0..rows(w) {
            let mut acc = Jacobian { x: bx, y: by, z: C::FieldElement::ONE };
            for j in 1..=half {
                jac.push(acc);
                if j == 1 {
                    acc = acc.double();
                } else if j < half {
                    // acc = j·B and B, 2 <= j < 2^(w-1): never equal or opposite, B has prime order n.
                    acc.add_affine(&bx, &by).ok()?;
                }
            }
            // acc = 2^(w-1)·B; its double is the next window's unit, made affine for the mixed additions.
            (bx, by) = acc.double().to_affine()?;
        }
        Some(Table { w, points: normalize(&jac)? })
    }

    /// Adds `k·P` to `acc`, in time that depends on `k`.
    fn mul_add(&self, k: &U256, acc: &mut Jacobian<C::FieldElement>) -> Result<(), Exceptional> {
        let le = k.to_le_byte_array();
        let half = 1i64 << (self.w - 1);
        let mut carry = 0i64;
        for (i, multiples) in self.points.chunks(half as usize).enumerate() {
            let mut d = digit(&le, i * self.w, self.w) as i64 + carry;
            carry = 0;
            if d > half {
                d -= 2 * half;
                carry = 1;
            }
            if d != 0 {
                let (x, y) = &multiples[(d.unsigned_abs() - 1) as usize];
                if d > 0 {
                    acc.add_affine(x, y)?;
                } else {
                    acc.add_affine(x, &-*y)?;
                }
            }
        }
        // Enough rows that the last carry is always absorbed; a scalar wider than 256 bits is a bug.
        if carry == 0 {
            Ok(())
        } else {
            Err(Exceptional)
        }
    }
}

/// Signed windows of `w` bits covering a 256-bit scalar and the carry out of its top window.
fn rows(w: usize) -> usize {
    257usize.div_ceil(w)
}

/// Affine forms of Jacobian points, with one field inversion for all (Montgomery's trick).
fn normalize<F: Field>(points: &[Jacobian<F>]) -> Option<Vec<(F, F)>> {
    let mut prefix = Vec::with_capacity(points.len());
    let mut acc = F::ONE;
    for p in points {
        acc *= p.z;
        prefix.push(acc);
    }
    let mut inv: F = Option::from(acc.invert())?;
    let mut out = vec![(F::ZERO, F::ZERO); points.len()];
    for i in (0..points.len()).rev() {
        let zi = if i == 0 { inv } else { inv * prefix[i - 1] };
        inv *= points[i].z;
        let zi2 = zi.square();
        out[i] = (points[i].x * zi2, points[i].y * zi2 * zi);
    }
    Some(out)
}

/// The affine coordinates of a point that is not the identity, as field elements.
fn coordinates<C: Tabled>(p: &AffinePoint<C>) -> (C::FieldElement, C::FieldElement)
where
    ProjectivePoint<C>: Double,
{
    let sec1 = C::sec1(p);
    let field = |b: &[u8]| <[u8; 32]>::try_from(b).ok().and_then(C::field).unwrap_or(C::FieldElement::ZERO);
    match sec1.len() {
        65 => (field(&sec1[1..33]), field(&sec1[33..])),
        _ => (C::FieldElement::ZERO, C::FieldElement::ZERO),
    }
}

/// The `w`-bit digit of a little-endian integer starting at bit `bit` (zero past the end).
fn digit(le: &[u8], bit: usize, w: usize) -> usize {
    let mut v = 0u32;
    for (k, b) in le.iter().skip(bit / 8).take(3).enumerate() {
        v |= (*b as u32) << (8 * k);
    }
    ((v >> (bit % 8)) & ((1 << w) - 1)) as usize
}

/// A point in Jacobian coordinates: x = X/Z², y = Y/Z³; Z = 0 is the identity.
#[derive(Clone, Copy)]
struct Jacobian<F> {
    x: F,
    y: F,
    z: F,
}

impl<F: Field> Jacobian<F> {
    fn identity() -> Self {
        Jacobian { x: F::ONE, y: F::ONE, z: F::ZERO }
    }

    /// `2·self` on a curve with a = -3 (dbl-2001-b, 3M + 5S), for a point of odd order.
    fn double(&self) -> Self {
        let delta = self.z.square();
        let gamma = self.y.square();
        let beta = self.x * gamma;
        let m = (self.x - delta) * (self.x + delta);
        let alpha = m.double() + m;
        let beta4 = beta.double().double();
        let x3 = alpha.square() - beta4.double();
        let z3 = (self.y + self.z).square() - gamma - delta;
        let y3 = alpha * (beta4 - x3) - gamma.square().double().double().double();
        Jacobian { x: x3, y: y3, z: z3 }
    }

    /// (X/Z², Y/Z³), or `None` for the identity.
    fn to_affine(self) -> Option<(F, F)> {
        let zi: F = Option::from(self.z.invert())?;
        let zi2 = zi.square();
        Some((self.x * zi2, self.y * zi2 * zi))
    }

    /// `self += (x2, y2)` (madd-2007-bl, 7M + 4S), for a point `(x2, y2)` that is not the identity.
    fn add_affine(&mut self, x2: &F, y2: &F) -> Result<(), Exceptional> {
        if bool::from(self.z.is_zero()) {
            *self = Jacobian { x: *x2, y: *y2, z: F::ONE };
            return Ok(());
        }
        let z1z1 = self.z.square();
        let u2 = *x2 * z1z1;
        let s2 = *y2 * self.z * z1z1;
        let h = u2 - self.x;
        if bool::from(h.is_zero()) {
            // Equal points (a doubling) or opposite ones (the identity): not this formula's case.
            return Err(Exceptional);
        }
        let r = (s2 - self.y).double();
        let hh = h.square();
        let i = hh.double().double();
        let j = h * i;
        let v = self.x * i;
        let x3 = r.square() - j - v.double();
        let y3 = r * (v - x3) - (self.y * j).double();
        let z3 = (self.z + h).square() - z1z1 - hh;
        *self = Jacobian { x: x3, y: y3, z: z3 };
        Ok(())
    }
}

/// Tables of prepared keys, by their uncompressed SEC1 encoding, and the order they came in.
pub struct KeyTables<C: PrimeCurveParams> {
    inner: RwLock<Tables<C>>,
}

type Tables<C> = (HashMap<Vec<u8>, Arc<Table<C>>>, VecDeque<Vec<u8>>);

impl<C: PrimeCurveParams> Default for KeyTables<C> {
    fn default() -> Self {
        KeyTables { inner: RwLock::new((HashMap::new(), VecDeque::new())) }
    }
}

impl<C: PrimeCurveParams> KeyTables<C> {
    fn get(&self, sec1: &[u8]) -> Option<Arc<Table<C>>> {
        self.inner.read().ok()?.0.get(sec1).cloned()
    }

    fn insert(&self, sec1: Vec<u8>, table: Table<C>) {
        let Ok(mut g) = self.inner.write() else { return };
        let (map, order) = &mut *g;
        if map.contains_key(&sec1) {
            return;
        }
        while map.len() >= KEY_TABLES {
            match order.pop_front() {
                Some(old) => drop(map.remove(&old)),
                None => break,
            }
        }
        order.push_back(sec1.clone());
        let _ = map.insert(sec1, Arc::new(table));
    }
}

/// Builds the table of a key that will be verified often (a token's key); a few milliseconds, once.
pub fn prepare<C: Tabled>(key: &AffinePoint<C>)
where
    ProjectivePoint<C>: Double,
{
    let sec1 = C::sec1(key);
    if C::key_tables().get(&sec1).is_none() {
        if let Some(table) = Table::new(key, KEY_WINDOW) {
            C::key_tables().insert(sec1, table);
        }
    }
}

/// Whether the x-coordinate of `a·G + b·P`, reduced mod n, equals `v` (which is below n): the last
/// step of both SM2 and ECDSA verification. `Err` when the fast path cannot decide.
pub fn lincomb_x_is<C: Tabled>(
    a: &Scalar<C>,
    key: &AffinePoint<C>,
    b: &Scalar<C>,
    v: &Scalar<C>,
) -> Result<bool, Exceptional>
where
    ProjectivePoint<C>: Double,
{
    let mut acc = Jacobian::<C::FieldElement>::identity();
    C::generator_table().ok_or(Exceptional)?.mul_add(&(*a).into(), &mut acc)?;
    match C::key_tables().get(&C::sec1(key)) {
        Some(t) => t.mul_add(&(*b).into(), &mut acc)?,
        None => {
            // An unprepared key: RustCrypto's multiplication, then one mixed addition.
            let bp = (ProjectivePoint::<C>::from(*key) * *b).to_affine();
            if !bool::from(bp.is_identity()) {
                let (x, y) = coordinates::<C>(&bp);
                acc.add_affine(&x, &y)?;
            }
        }
    }
    if bool::from(acc.z.is_zero()) {
        return Ok(false);
    }
    // x = X/Z² lies in [0, p); as n < p, x mod n = v means x = v or x = v + n.
    let z2 = acc.z.square();
    let v: U256 = (*v).into();
    let (v_plus_n, carry) = v.adc(&C::ORDER, elliptic_curve::bigint::Limb::ZERO);
    let no_overflow = carry == elliptic_curve::bigint::Limb::ZERO;
    for c in std::iter::once(v).chain(no_overflow.then_some(v_plus_n)) {
        let be: [u8; 32] = c.to_be_byte_array().into();
        if let Some(f) = C::field(be) {
            if acc.x == f * z2 {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use elliptic_curve::ops::Reduce;
    use elliptic_curve::point::AffineCoordinates;
    use elliptic_curve::{FieldBytes, Group};

    /// A scalar spread over the whole range (x ↦ x³, eight times, from a small seed).
    fn scalar<C: Tabled>(seed: u64) -> Scalar<C>
    where
        ProjectivePoint<C>: Double,
    {
        let mut x = Scalar::<C>::from(seed + 2);
        for _ in 0..8 {
            x = x.square() * x;
        }
        x
    }

    /// `a·G + b·P` from the tables agrees with RustCrypto's arithmetic, prepared or not, at the
    /// edges (0, 1, n-1) and at random.
    fn agrees<C: Tabled>()
    where
        ProjectivePoint<C>: Double,
        Scalar<C>: Reduce<U256>,
        AffinePoint<C>: AffineCoordinates<FieldRepr = FieldBytes<C>>,
    {
        for seed in 0..24u64 {
            let d = scalar::<C>(1000 + seed);
            let key = (ProjectivePoint::<C>::generator() * d).to_affine();
            if seed % 2 == 0 {
                prepare::<C>(&key);
            }
            let (a, b) = match seed {
                0 => (Scalar::<C>::ONE, Scalar::<C>::ONE),
                1 => (-Scalar::<C>::ONE, scalar::<C>(7)),
                2 => (scalar::<C>(8), -Scalar::<C>::ONE),
                _ => (scalar::<C>(seed), scalar::<C>(seed + 50)),
            };
            let expect = (ProjectivePoint::<C>::generator() * a + ProjectivePoint::<C>::from(key) * b).to_affine();
            let x = <Scalar<C> as Reduce<U256>>::reduce_bytes(&expect.x());
            assert_eq!(lincomb_x_is::<C>(&a, &key, &b, &x), Ok(true), "seed {seed}");
            assert_eq!(lincomb_x_is::<C>(&a, &key, &b, &(x + Scalar::<C>::ONE)), Ok(false), "seed {seed}");
            assert_eq!(C::key_tables().get(&C::sec1(&key)).is_some(), seed % 2 == 0);
        }
    }

    #[test]
    fn sm2_tables_agree_with_rustcrypto() {
        agrees::<::sm2::Sm2>();
    }

    #[test]
    fn p256_tables_agree_with_rustcrypto() {
        agrees::<p256::NistP256>();
    }

    #[test]
    fn equal_points_are_reported_not_miscomputed() {
        // a·G + b·P with P = G and the first digits equal: the second addition doubles.
        let g = ::sm2::AffinePoint::GENERATOR;
        prepare::<::sm2::Sm2>(&g);
        let one = ::sm2::Scalar::ONE;
        assert_eq!(lincomb_x_is::<::sm2::Sm2>(&one, &g, &one, &one), Err(Exceptional));
        // a·G + (n-a)·G is the identity, whose x matches nothing.
        let a = ::sm2::Scalar::from(5u64);
        assert!(lincomb_x_is::<::sm2::Sm2>(&a, &g, &-a, &::sm2::Scalar::ZERO).is_err_or_false());
    }

    trait ErrOrFalse {
        fn is_err_or_false(&self) -> bool;
    }
    impl ErrOrFalse for Result<bool, Exceptional> {
        fn is_err_or_false(&self) -> bool {
            !matches!(self, Ok(true))
        }
    }

    #[test]
    fn every_window_width_agrees() {
        type C = ::sm2::Sm2;
        let key = (ProjectivePoint::<C>::generator() * scalar::<C>(99)).to_affine();
        for w in [2, 3, 5, 7, 8, 11, 12] {
            let table = Table::<C>::new(&key, w).unwrap();
            for k in [Scalar::<C>::ONE, -Scalar::<C>::ONE, scalar::<C>(w as u64), scalar::<C>(1000 + w as u64)] {
                let mut acc = Jacobian::identity();
                table.mul_add(&k.into(), &mut acc).unwrap();
                let (x, y) = acc.to_affine().unwrap();
                let expect = coordinates::<C>(&(ProjectivePoint::<C>::from(key) * k).to_affine());
                assert!(x == expect.0 && y == expect.1, "w {w}");
            }
        }
        assert!(Table::<C>::new(&::sm2::AffinePoint::IDENTITY, 8).is_none());
    }

    #[test]
    fn digits_read_across_bytes() {
        let le = [0b1010_1100u8, 0b0000_0011];
        assert_eq!(digit(&le, 0, 6), 0b10_1100);
        assert_eq!(digit(&le, 6, 6), 0b00_1110);
        assert_eq!(digit(&le, 12, 6), 0);
        assert_eq!(digit(&le, 252, 6), 0);
    }
}
