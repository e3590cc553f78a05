// Upper bounds on the arguments that set how much work or memory an op does
// (not on the data): sampling ratios, output sizes, grid sizes, fixed output
// counts. A typo or an unset integer there would otherwise run for hours
// (roi_align with sampling_ratio=2**20 samples 2**40 points per bin;
// torchvision crashes on it) or ask for terabytes before failing. Each bound
// is far above what a real model uses; the ValueError names the op, the
// argument, the bound and what it counts. visionops/_checks.py's MAX_*
// holds the same numbers for the fake kernels.
#pragma once

#include <c10/util/Exception.h>

#include <cstdint>

namespace vo {

constexpr int64_t kMaxSamplingRatio = 128;         // points per RoI bin side; models use 0 (adaptive) to 4
constexpr int64_t kMaxPooledSide = 1024;           // RoI output side; Mask R-CNN uses 14 or 28
constexpr int64_t kMaxFixedOutputs = 1 << 24;      // padded_nms max_output, yolo_decode max_detections
constexpr int64_t kMaxGridSide = 1 << 20;          // grid_anchors' feature map side
constexpr int64_t kMaxAnchors = (int64_t(1) << 31) - 1;  // grid_anchors' total: int32-indexable

inline void check_at_most(int64_t value, int64_t bound, const char* op, const char* arg, const char* what) {
  TORCH_CHECK_VALUE(value <= bound, "visionops.", op, ": ", arg, " must be at most ", bound, " (", what, "), got ",
                    value);
}

}  // namespace vo
