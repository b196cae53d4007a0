// Winograd convolution F(m×m, 3×3) for 3×3 stride-1 float32 layers on the CPU (Lavin & Gray,
// "Fast Algorithms for Convolutional Neural Networks", 2016), m = 2 or 4.
//
// Each m×m output tile is computed from an (m+2)×(m+2) input tile as A^T [(G g G^T) ⊙ (B^T d B)] A;
// over a block of tiles the elementwise products become (m+2)² independent GEMMs
// [K×C]·[C×tiles] (our micro-kernel, winograd_gemm.h; the weight gradient's through OpenBLAS), so
// the multiply-adds drop by 9m²/(m+2)²: 2.25× for F(2,3), 4× for F(4,3). Which m each pass uses:
// winograd.cpp (kDefaultTile: F(2,3) forward, F(4,3) gradients, and why). The data gradient is the same algorithm on dy with the flipped, transposed filters;
// the weight gradient is the exact adjoint of the forward in the Winograd domain,
// dw = G^T [Σ_tiles (A dy A^T) ⊗ (B^T d B)] G.
//
// Determinism: tiles are cut into blocks by the shape alone; every output tile is written by one
// block, and the weight gradient accumulates the blocks in order through GEMM calls fixed by the
// shape, so results do not depend on the thread count. Rounding differs from the im2col path (the
// transforms add and scale), bounded in tests/kernels/test_conv2d.cpp (namespace winograd_cpu).
#pragma once
#include <cstdint>

#include "kernels/conv2d.h"

namespace dp::kernels::cpu::winograd {

enum class Pass { Forward = 0, Data = 1, Weight = 2 };

// Output tile size used for a layer's pass: 4 or 2, or 0 when Winograd does not apply (not 3×3,
// stride != 1, padding > 2, too few channels to amortise the transforms).
int tile_size_for(const Conv2dGeometry& g, Pass pass);

// tile = 2 or 4. bias may be null. y, dx and dw are overwritten.
void forward(const float* x, const float* w, const float* bias, float* y, const Conv2dGeometry& g, int tile);
void backward_data(const float* dy, const float* w, float* dx, const Conv2dGeometry& g, int tile);
void backward_weight(const float* x, const float* dy, float* dw, const Conv2dGeometry& g, int tile);

}  // namespace dp::kernels::cpu::winograd
