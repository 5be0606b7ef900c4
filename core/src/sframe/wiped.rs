//! Vectors of secrets that leave no copy behind.
//!
//! A `Vec` that grows moves its elements into a new buffer and frees the old
//! one as it is; one that removes an element shifts the rest down and leaves
//! a copy of the last one past its end. `Zeroizing` fields wipe only the
//! place an element is in when it is dropped. These helpers wipe the rest:
//! the old buffer before it is freed and the memory past the last element.
//! The key ring keeps its epochs and receiver keys in vectors through them.

use alloc::vec::Vec;

use zeroize::Zeroize;

/// Makes room for one more element without a reallocation that would free
/// the old buffer with the elements' bytes in it: grows into a new buffer,
/// moves the elements, and wipes the old buffer before it is freed.
pub(crate) fn reserve_one<T>(v: &mut Vec<T>) {
    if v.len() < v.capacity() {
        return;
    }
    let mut bigger = Vec::with_capacity(v.capacity().saturating_mul(2).max(4));
    bigger.append(v);
    // Every slot is spare now: the moved elements' bytes are wiped.
    v.spare_capacity_mut().zeroize();
    *v = bigger;
}

/// Wipes the memory past the last element, where a removal leaves a copy.
pub(crate) fn wipe_spare<T>(v: &mut Vec<T>) {
    v.spare_capacity_mut().zeroize();
}

/// Drops every element, then wipes the whole buffer.
pub(crate) fn wipe<T>(v: &mut Vec<T>) {
    v.clear();
    wipe_spare(v);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growing_keeps_the_elements_in_order() {
        let mut v: Vec<u32> = Vec::new();
        for i in 0..100 {
            reserve_one(&mut v);
            let before = v.capacity();
            v.push(i);
            assert_eq!(v.capacity(), before, "push never reallocates");
        }
        assert_eq!(v, (0..100).collect::<Vec<_>>());
        v.remove(0);
        wipe_spare(&mut v);
        assert_eq!(v, (1..100).collect::<Vec<_>>());
        wipe(&mut v);
        assert!(v.is_empty());
    }
}
