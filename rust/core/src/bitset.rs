//! A fixed-size set of item rows, one bit per row in little-endian `u64` words.
//!
//! The words' bytes, read in memory order, are exactly the packed bitmap FAISS's
//! `IDSelectorBitmap` expects (`np.packbits(mask, bitorder="little")`): row `i` is bit `i & 7`
//! of byte `i >> 3`.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bitset {
    words: Vec<u64>,
    len: usize,
}

impl Bitset {
    /// An empty set over `len` rows.
    pub fn new(len: usize) -> Self {
        Bitset {
            words: vec![0; len.div_ceil(64)],
            len,
        }
    }

    /// A set built from whole words (bits past `len` must be zero).
    pub fn from_words(words: Vec<u64>, len: usize) -> Self {
        debug_assert_eq!(words.len(), len.div_ceil(64));
        Bitset { words, len }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    pub fn contains(&self, row: usize) -> bool {
        row < self.len && (self.words[row >> 6] >> (row & 63)) & 1 == 1
    }

    #[inline]
    pub fn insert(&mut self, row: usize) {
        self.words[row >> 6] |= 1 << (row & 63);
    }

    #[inline]
    pub fn remove(&mut self, row: usize) {
        if row < self.len {
            self.words[row >> 6] &= !(1 << (row & 63));
        }
    }

    /// Number of rows in the set.
    pub fn count(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    pub fn words(&self) -> &[u64] {
        &self.words
    }

    pub fn into_words(self) -> Vec<u64> {
        self.words
    }

    /// Rows in the set, ascending.
    pub fn rows(&self) -> Vec<i64> {
        let mut out = Vec::with_capacity(self.count());
        for (w, &word) in self.words.iter().enumerate() {
            let mut bits = word;
            while bits != 0 {
                out.push(((w << 6) + bits.trailing_zeros() as usize) as i64);
                bits &= bits - 1;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_remove_count_and_rows_agree() {
        let mut set = Bitset::new(130);
        for row in [0, 5, 63, 64, 129] {
            set.insert(row);
        }
        set.remove(5);
        assert_eq!(set.count(), 4);
        assert_eq!(set.rows(), vec![0, 63, 64, 129]);
        assert!(set.contains(129) && !set.contains(5) && !set.contains(500));
    }

    #[test]
    fn words_are_little_endian_packed_bits() {
        let mut set = Bitset::new(16);
        set.insert(1);
        set.insert(9);
        let bytes = set.words()[0].to_le_bytes();
        assert_eq!(bytes[0], 0b10);
        assert_eq!(bytes[1], 0b10);
    }
}
