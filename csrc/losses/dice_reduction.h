// The Dice loss from its per-class statistics, and the per-class
// coefficients of its gradient: scalar loops shared by the CPU entry points
// (one lane) and the CUDA kernels of dice_loss_cuda.cu (one block, a lane a
// thread). About 20 small [C]-sized tensor ops did this before, most of the
// op's time on a small image: a (1, 1, 64, 64) binary loss took 29 us
// forward and 38 us backward as ops, 206 us forward and backward through
// autograd; 11, 12 and 116 us with these loops (AMD Zen 4, 1 thread). The
// per-class formulas are in losses/math.h.
#pragma once

#include <cstdint>

#include "core/macros.h"
#include "losses/math.h"

namespace vo {

// Lane `lane` of `lanes`' share of the reduced loss: the weighted losses of
// classes lane, lane + lanes, ... (w null: weights of 1), added in that
// order into sum and their weights into wsum; with out non-null ('none'),
// each weighted loss is also stored there. The lanes' sums are then added in
// lane order, so one lane gives the classes' sum in class order, and a block
// of at least C lanes the same bits.
VO_HOST_DEVICE_INLINE void dice_loss_lane(const double* stats, int64_t C, const double* w, const DiceParams& p,
                                          int64_t lane, int64_t lanes, double* out, double& sum, double& wsum) {
  sum = 0.0;
  wsum = 0.0;
  for (int64_t c = lane; c < C; c += lanes) {
    const double wc = w ? w[c] : 1.0;
    const double v = dice_class_loss(stats[c], stats[C + c], stats[2 * C + c], p) * wc;
    if (out) out[c] = v;
    sum += v;
    wsum += wc;
  }
}

// The sum of lane `lane`'s weights, as dice_loss_lane adds them.
VO_HOST_DEVICE_INLINE double dice_weight_lane(const double* w, int64_t C, int64_t lane, int64_t lanes) {
  double wsum = 0.0;
  for (int64_t c = lane; c < C; c += lanes) wsum += w ? w[c] : 1.0;
  return wsum;
}

// Coefficients a and b [C] of lane `lane`'s classes (dice_class_coefficients)
// given the upstream gradient g: class c's is g[c * g_stride] (stride 1 for
// 'none', 0 for one gradient of the reduced loss) times its weight, divided
// by `divisor` (the weights' sum for 'mean', else 1).
VO_HOST_DEVICE_INLINE void dice_coefficients_lane(const double* stats, int64_t C, const double* w, const double* g,
                                                  int64_t g_stride, double divisor, const DiceParams& p,
                                                  int64_t lane, int64_t lanes, double* a, double* b) {
  for (int64_t c = lane; c < C; c += lanes) {
    const double up = g[c * g_stride] * (w ? w[c] : 1.0) / divisor;
    dice_class_coefficients(stats[c], stats[C + c], stats[2 * C + c], up, p, a[c], b[c]);
  }
}

}  // namespace vo
