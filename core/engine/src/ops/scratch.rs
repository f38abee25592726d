//! The one pool of reusable buffers behind every CPU kernel and the CPU
//! training path.
//!
//! A training step needs the same buffer sizes every time (activations,
//! gradients, column matrices, argmax indices); taking them from this pool
//! and giving them back on drop means a step allocates almost nothing after
//! the first, and the allocator does not hand pages back to the OS only to
//! fault them in (zeroed) again next step. The pool is shared by all
//! threads: a buffer filled on a rayon worker and dropped on the caller
//! (a partial weight gradient, say) comes back to the same list the worker
//! takes from next time.
//!
//! A reused buffer holds whatever its last user left, so a kernel that
//! reads a value before writing it would compute from stale numbers that
//! change from step to step. Debug builds (and so the tests) hand out every
//! [`Scratch::any`] buffer poisoned, NaN or the largest integer, so that
//! such a read shows up as NaN results or an out-of-range index.

use std::any::{Any, TypeId};
use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, MutexGuard};

use candle_core::WithDType;

/// Free buffers kept per element type and length: more than any network
/// here has alive at once of one size (a step's buffers all come back at
/// its end, so the pool holds about one step's worth).
const KEEP_PER_LEN: usize = 512;

type FreeLists = BTreeMap<(TypeId, usize), Vec<Box<dyn Any + Send>>>;

static FREE: Mutex<FreeLists> = Mutex::new(BTreeMap::new());

fn free_lists() -> MutexGuard<'static, FreeLists> {
    // A panic while holding the lock leaves the lists consistent (every
    // operation is a single push or pop), so a poisoned lock is still usable.
    FREE.lock().unwrap_or_else(|e| e.into_inner())
}

/// A buffer of `len` values that goes back to the pool when dropped.
pub(crate) struct Scratch<T: WithDType> {
    data: Vec<T>,
}

impl<T: WithDType> Scratch<T> {
    /// `len` values the caller overwrites before reading: a reused buffer
    /// keeps its old contents (no memset per call) in release builds, and
    /// is poisoned in debug builds (see the module docs).
    pub(crate) fn any(len: usize) -> Self {
        if len == 0 {
            return Self { data: Vec::new() };
        }
        let reused = free_lists()
            .get_mut(&(TypeId::of::<T>(), len))
            .and_then(Vec::pop)
            .and_then(|b| b.downcast::<Vec<T>>().ok());
        let mut s = Self {
            data: reused.map_or_else(|| vec![T::zero(); len], |b| *b),
        };
        if cfg!(debug_assertions) {
            s.fill(poison());
        }
        s
    }

    /// `len` zeros.
    pub(crate) fn zeros(len: usize) -> Self {
        let mut s = Self::any(len);
        s.fill(T::zero());
        s
    }

    /// A copy of `src`.
    pub(crate) fn copy_of(src: &[T]) -> Self {
        let mut s = Self::any(src.len());
        s.copy_from_slice(src);
        s
    }

    /// Adopts `data` (it joins the pool when dropped).
    pub(crate) fn from_vec(data: Vec<T>) -> Self {
        Self { data }
    }

    /// The values, leaving the pool (how a buffer becomes a tensor's
    /// storage without a copy).
    pub(crate) fn into_vec(mut self) -> Vec<T> {
        std::mem::take(&mut self.data)
    }
}

/// What a buffer holds before its user writes it, in debug builds: NaN for
/// floating-point types, the largest value for integers (an index past any
/// end).
fn poison<T: WithDType>() -> T {
    if T::DTYPE.is_float() {
        T::from_f64(f64::NAN)
    } else {
        T::from_f64(f64::MAX)
    }
}

impl<T: WithDType> Deref for Scratch<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.data
    }
}

impl<T: WithDType> DerefMut for Scratch<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.data
    }
}

impl<T: WithDType> Drop for Scratch<T> {
    fn drop(&mut self) {
        let data = std::mem::take(&mut self.data);
        if data.is_empty() {
            return;
        }
        let mut free = free_lists();
        let list = free.entry((TypeId::of::<T>(), data.len())).or_default();
        if list.len() < KEEP_PER_LEN {
            list.push(Box::new(data));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_by_type_and_length() {
        // A length no other test uses, so concurrent tests cannot take it.
        let len = 7919;
        let mut a = Scratch::<f32>::any(len);
        a[0] = 42.0;
        let p = a.as_ptr();
        drop(a);
        let b = Scratch::<f32>::any(len);
        assert_eq!(b.as_ptr(), p);
        if cfg!(debug_assertions) {
            assert!(b.iter().all(|v| v.is_nan()), "poisoned for its next user");
        } else {
            assert_eq!(b[0], 42.0, "handed out as it was left");
        }
        // Another type or length never gets it.
        let c = Scratch::<u32>::zeros(len);
        assert_ne!(c.as_ptr().cast::<f32>(), p);
        assert!(c.iter().all(|&v| v == 0));
        if cfg!(debug_assertions) {
            assert!(Scratch::<u32>::any(3).iter().all(|&v| v == u32::MAX));
        }
        assert_eq!(Scratch::<f32>::zeros(len + 1).len(), len + 1);
        drop(b);
        assert!(Scratch::<f32>::zeros(len).iter().all(|&v| v == 0.0));
    }
}
