// Levenshtein edit counts that reproduce jiwer 4's numbers exactly.
//
// jiwer takes S/D/I/H from rapidfuzz.distance.Levenshtein.opcodes(). Several optimal
// alignments usually exist (e.g. "a b" -> "b c" is either 2 substitutions or
// 1 deletion + 1 insertion), so the total distance alone does not fix the counts.
// rapidfuzz (3.x) strips the common prefix/suffix, fills Hyyrö's bit-parallel matrix
// and walks back from the bottom-right corner preferring deletion, then insertion,
// then the diagonal. The VP/VN bits it tests are the +1/-1 vertical deltas of the
// ordinary DP matrix, so the same walk is done here on a plain DP matrix.
// (Verified against rapidfuzz's C++ implementation on 60k random sequence pairs of
// up to 150 tokens. Beyond roughly 2,000 x 2,000 tokens rapidfuzz switches to
// Hirschberg, whose tie-breaking may differ; per-utterance inputs are far smaller.)

export interface EditCounts {
  substitutions: number;
  deletions: number;
  insertions: number;
  hits: number;
}

/** Edit counts turning `ref` into `hyp`, with rapidfuzz's tie-breaking. */
export function editCounts<T>(ref: readonly T[], hyp: readonly T[]): EditCounts {
  let prefix = 0;
  while (prefix < ref.length && prefix < hyp.length && ref[prefix] === hyp[prefix]) prefix++;
  let suffix = 0;
  while (suffix < ref.length - prefix && suffix < hyp.length - prefix && ref[ref.length - 1 - suffix] === hyp[hyp.length - 1 - suffix]) {
    suffix++;
  }
  const a = ref.slice(prefix, ref.length - suffix);
  const b = hyp.slice(prefix, hyp.length - suffix);
  const n = a.length;
  const m = b.length;

  // D[i * (m + 1) + j] = distance between a[:i] and b[:j].
  const w = m + 1;
  const D = new Uint32Array((n + 1) * w);
  for (let i = 0; i <= n; i++) D[i * w] = i;
  for (let j = 0; j <= m; j++) D[j] = j;
  for (let i = 1; i <= n; i++) {
    for (let j = 1; j <= m; j++) {
      const sub = D[(i - 1) * w + j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1);
      const del = D[(i - 1) * w + j] + 1;
      const ins = D[i * w + j - 1] + 1;
      D[i * w + j] = Math.min(sub, del, ins);
    }
  }

  let substitutions = 0;
  let deletions = 0;
  let insertions = 0;
  // col indexes the reference (s1), row the hypothesis (s2), as in rapidfuzz.
  let col = n;
  let row = m;
  const vdelta = (c: number, r: number) => D[c * w + r] - D[(c - 1) * w + r];
  while (row !== 0 && col !== 0) {
    if (vdelta(col, row) === 1) {
      deletions++;
      col--;
    } else {
      row--;
      if (row !== 0 && vdelta(col, row) === -1) {
        insertions++;
      } else {
        col--;
        if (a[col] !== b[row]) substitutions++;
      }
    }
  }
  deletions += col;
  insertions += row;

  return {
    substitutions,
    deletions,
    insertions,
    hits: ref.length - substitutions - deletions,
  };
}

/** One edit of an alignment, in rapidfuzz's `Levenshtein.editops` form. */
export interface EditOp {
  tag: 'replace' | 'delete' | 'insert';
  /**
   * Reference index: the word replaced or deleted; for an insertion, the index of the reference
   * word the inserted word goes before (ref.length when it goes after the last one).
   */
  refPos: number;
  /** Hypothesis index: the word inserted or substituting; for a deletion, the hypothesis position it falls at. */
  hypPos: number;
}

/**
 * The edit operations behind editCounts(), in reference order: the same prefix/suffix stripping
 * and the same walk back through the DP matrix (deletion, then insertion, then the diagonal), so
 * counting the tags of editOps(ref, hyp) gives editCounts(ref, hyp) exactly, and the positions are
 * those of rapidfuzz.distance.Levenshtein.editops (which jiwer's alignments and the PIER reference
 * implementation read). Hits are the reference words no op names as replaced or deleted.
 */
export function editOps<T>(ref: readonly T[], hyp: readonly T[]): EditOp[] {
  let prefix = 0;
  while (prefix < ref.length && prefix < hyp.length && ref[prefix] === hyp[prefix]) prefix++;
  let suffix = 0;
  while (suffix < ref.length - prefix && suffix < hyp.length - prefix && ref[ref.length - 1 - suffix] === hyp[hyp.length - 1 - suffix]) {
    suffix++;
  }
  const a = ref.slice(prefix, ref.length - suffix);
  const b = hyp.slice(prefix, hyp.length - suffix);
  const n = a.length;
  const m = b.length;
  const w = m + 1;
  const D = new Uint32Array((n + 1) * w);
  for (let i = 0; i <= n; i++) D[i * w] = i;
  for (let j = 0; j <= m; j++) D[j] = j;
  for (let i = 1; i <= n; i++) {
    for (let j = 1; j <= m; j++) {
      const sub = D[(i - 1) * w + j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1);
      const del = D[(i - 1) * w + j] + 1;
      const ins = D[i * w + j - 1] + 1;
      D[i * w + j] = Math.min(sub, del, ins);
    }
  }
  const ops: EditOp[] = []; // collected backwards
  let col = n;
  let row = m;
  const vdelta = (c: number, r: number) => D[c * w + r] - D[(c - 1) * w + r];
  while (row !== 0 && col !== 0) {
    if (vdelta(col, row) === 1) {
      col--;
      ops.push({ tag: 'delete', refPos: col + prefix, hypPos: row + prefix });
    } else {
      row--;
      if (row !== 0 && vdelta(col, row) === -1) {
        ops.push({ tag: 'insert', refPos: col + prefix, hypPos: row + prefix });
      } else {
        col--;
        if (a[col] !== b[row]) ops.push({ tag: 'replace', refPos: col + prefix, hypPos: row + prefix });
      }
    }
  }
  while (col !== 0) {
    col--;
    ops.push({ tag: 'delete', refPos: col + prefix, hypPos: row + prefix });
  }
  while (row !== 0) {
    row--;
    ops.push({ tag: 'insert', refPos: col + prefix, hypPos: row + prefix });
  }
  return ops.reverse();
}
