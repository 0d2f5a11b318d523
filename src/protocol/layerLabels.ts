// How layers and ranks are shown to people, the same in the panels and the Layers view.
// Layers keep the model's own 0-based numbering (the ONNX graph, config lists, `--layers` and
// the report all count from 0), so "layer 9" names the same layer everywhere. Ranks are shown
// from 1: a rank is a place in an ordering ("the most redundant layer is the 1st"), and the
// Layers view has always said "rank 1 = most redundant"; the report stores it from 0.

/** The rank as shown: 1 = most redundant among the candidates; null outside the range. */
export const displayRank = (rank: number | null | undefined): number | null => (rank === null || rank === undefined ? null : rank + 1);

export const RANK_NOTE = 'Rank 1 = the most redundant candidate layer (removed first).';
