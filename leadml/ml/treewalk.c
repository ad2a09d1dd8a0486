/* Tree ensemble walks in C for leadml.ml.native: the leaves records reach, and the exact
 * interventional Shapley values against one reference record (leadml.ml.treeshap has the
 * algorithm and the numpy version of both; the results are the same, see native.py).
 *
 * The arrays are TreeEnsemble's (leadml.ml.compiled): global node ids, children[2n] the
 * left child and children[2n + 1] the right one, leaves pointing to themselves. A value
 * goes right when !(value <= threshold), except a missing value whose node sends missing
 * values left: sklearn's reading of its own trees.
 *
 * Built by native.py with the system C compiler into a shared library (no Python headers),
 * called through ctypes. Plain C99, no allocation but one stack per call.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

static inline int goes_right(double value, double threshold, uint8_t missing_left) {
    if (value <= threshold) return 0;
    return !(isnan(value) && missing_left);
}

/* leaves[r * n_trees + t]: the leaf record r reaches in tree t. */
void tw_leaves(const double *values, int64_t rows, int64_t width,
               const int64_t *feature, const double *threshold, const uint8_t *missing_left,
               const int64_t *children, const uint8_t *is_leaf,
               const int64_t *roots, int64_t n_trees, int64_t *leaves) {
    for (int64_t r = 0; r < rows; r++) {
        const double *record = values + r * width;
        for (int64_t t = 0; t < n_trees; t++) {
            int64_t node = roots[t];
            while (!is_leaf[node]) {
                node = children[2 * node + goes_right(record[feature[node]], threshold[node], missing_left[node])];
            }
            leaves[r * n_trees + t] = node;
        }
    }
}

typedef struct {
    int64_t node;
    uint64_t only_x; /* players whose splits on the path only the record satisfies (A) */
    uint64_t only_r; /* players whose splits on the path only the reference satisfies (B) */
} entry;

/* For each record r: shapley[r * n_players + p] (margin units, before the link),
 * record_margins[r] (the leaves reached with B empty) and reference_margins[r] (A empty),
 * the offset added to both. weights_a and weights_b are (n_players + 1)^2 tables indexed
 * [|A| * (n_players + 1) + |B|]. stack_size must exceed the deepest tree's depth (a
 * depth-first walk holds at most depth + 1 entries). Returns 0; -1 when the stack could
 * not be allocated; -2 when a tree was deeper than stack_size allows (nothing overrun). */
int tw_shapley(const double *values, int64_t rows, int64_t width,
               const int64_t *feature, const double *threshold, const uint8_t *missing_left,
               const int64_t *children, const uint8_t *is_leaf, const double *leaf_value,
               const int64_t *roots, int64_t n_trees,
               const uint8_t *reference_right, const int64_t *node_bits, int64_t n_players,
               const double *weights_a, const double *weights_b,
               int averaged, double offset, int64_t stack_size,
               double *shapley, double *record_margins, double *reference_margins) {
    entry *stack = malloc(sizeof(entry) * (size_t)stack_size);
    if (stack == NULL) return -1;
    const int64_t side = n_players + 1;
    for (int64_t r = 0; r < rows; r++) {
        const double *record = values + r * width;
        double *out = shapley + r * n_players;
        double record_margin = 0.0, reference_margin = 0.0;
        for (int64_t p = 0; p < n_players; p++) out[p] = 0.0;
        for (int64_t t = 0; t < n_trees; t++) {
            int64_t top = 0;
            stack[top++] = (entry){roots[t], 0, 0};
            while (top) {
                entry e = stack[--top];
                int64_t node = e.node;
                if (is_leaf[node]) {
                    double value = averaged ? leaf_value[node] / (double)n_trees : leaf_value[node];
                    int size_a = __builtin_popcountll(e.only_x);
                    int size_b = __builtin_popcountll(e.only_r);
                    if (size_b == 0) record_margin += value;
                    if (size_a == 0) reference_margin += value;
                    double gain = value * weights_a[size_a * side + size_b];
                    double loss = value * weights_b[size_a * side + size_b];
                    for (uint64_t bits = e.only_x; bits; bits &= bits - 1) out[__builtin_ctzll(bits)] += gain;
                    for (uint64_t bits = e.only_r; bits; bits &= bits - 1) out[__builtin_ctzll(bits)] -= loss;
                    continue;
                }
                if (top + 2 > stack_size) {
                    free(stack);
                    return -2;
                }
                int x_right = goes_right(record[feature[node]], threshold[node], missing_left[node]);
                int r_right = reference_right[node];
                if (x_right == r_right) {
                    stack[top++] = (entry){children[2 * node + x_right], e.only_x, e.only_r};
                    continue;
                }
                uint64_t bit = (uint64_t)node_bits[node];
                /* The record's side: the player joins A, unless it is in B (no hybrid gets there). */
                if (!(e.only_r & bit)) stack[top++] = (entry){children[2 * node + x_right], e.only_x | bit, e.only_r};
                /* The reference's side: the player joins B, unless it is in A. */
                if (!(e.only_x & bit)) stack[top++] = (entry){children[2 * node + r_right], e.only_x, e.only_r | bit};
            }
        }
        record_margins[r] = record_margin + offset;
        reference_margins[r] = reference_margin + offset;
    }
    free(stack);
    return 0;
}
