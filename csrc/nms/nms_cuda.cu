// CUDA kernels of nms, batched_nms and padded_nms. Same order, same per-pair
// test (nms/math.h), so the same kept boxes as the CPU.
//
// Boxes are sorted by descending score (stable: ties by index; NaN first),
// grouped by class for batched_nms (stable again), and gathered in that
// order. One launch computes, for every class segment, the upper triangle of
// the suppression bitmask, 64 x 64 pairs per block; a second launch, one
// block per segment, walks the segment in order and ORs each kept box's row
// into the removed set, on the device: the mask never goes to the host. The
// kept positions are then put back into score order.
//
// The output size of nms and batched_nms depends on the data, so they read a
// few sizes back to the host (as torchvision's nms does); padded_nms, whose
// output has a fixed size, never does. Memory: the mask, L x ceil(L / 64)
// words per segment of L boxes, as torchvision's; padded_nms reuses one
// mask buffer of at most 256 MB (or one image's) for chunks of images.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <tuple>
#include <vector>

#include "core/checks.h"
#include "core/cuda_launch.h"
#include "core/dtypes.h"
#include "nms/args.h"
#include "nms/math.h"

namespace vo {
namespace {

constexpr int kTile = 64;  // rows and columns of one mask block: one 64-bit word per row

// padded_nms's suppression masks take N * ceil(N / 64) words per image
// (25,200 YOLO candidates: 79 MB); images go through one buffer of at most
// this many bytes in chunks (one image at least), so memory does not grow
// with the batch. The mask grid's rows are one launch dimension (at most
// 65,535), which bounds N per image at 65,535 * 64.
constexpr int64_t kPaddedMaskBytes = int64_t(256) << 20;
constexpr int64_t kMaxPaddedBoxes = int64_t(65535) * kTile;

// Scores as sort keys: -0.0 as +0.0 and every NaN as +NaN. torch's sort on
// CUDA may order by the bits (a radix sort), which would put -0.0 after
// +0.0 and a NaN with its sign bit set last; the CPU kernels tie the zeros
// (then order by index) and put every NaN first.
at::Tensor canonical_scores(const at::Tensor& scores) {
  return at::where(at::isnan(scores), at::scalar_tensor(NAN, scores.options()), scores + 0);
}

// Segment s covers sorted positions [start[s], start[s] + length[s]). Its
// mask rows have words[s] words each, from word mask_offset[s]; its removed
// set has words[s] words, from word removed_offset[s].
struct Segments {
  const int64_t* start;
  const int64_t* length;
  const int64_t* words;
  const int64_t* mask_offset;
  const int64_t* removed_offset;
};

template <typename scalar_t, typename T>
__global__ void gather_boxes_kernel(const scalar_t* __restrict__ boxes, const int64_t* __restrict__ order,
                                    int64_t n, NmsBox<T>* __restrict__ out) {
  VO_CUDA_1D_KERNEL_LOOP(k, n) {
    const scalar_t* q = boxes + 4 * order[k];
    out[k] = make_nms_box<T>(static_cast<T>(q[0]), static_cast<T>(q[1]), static_cast<T>(q[2]), static_cast<T>(q[3]));
  }
}

// One block per 64 x 64 tile (segment, row block, column block) of a
// segment's upper triangle: thread r sets bit c of its row's word when box r
// suppresses box c (c after r).
template <typename T>
__global__ void nms_mask_kernel(const NmsBox<T>* __restrict__ boxes, Segments seg, const int32_t* __restrict__ tiles,
                                NmsPredicate pred, uint64_t* __restrict__ mask) {
  const int32_t s = tiles[3 * blockIdx.x];
  const int64_t row_block = tiles[3 * blockIdx.x + 1];
  const int64_t col_block = tiles[3 * blockIdx.x + 2];
  const int64_t start = seg.start[s], length = seg.length[s];
  const int64_t rows = min(static_cast<int64_t>(kTile), length - row_block * kTile);
  const int64_t cols = min(static_cast<int64_t>(kTile), length - col_block * kTile);

  __shared__ NmsBox<T> col_boxes[kTile];
  if (threadIdx.x < cols) col_boxes[threadIdx.x] = boxes[start + col_block * kTile + threadIdx.x];
  __syncthreads();
  if (threadIdx.x >= rows) return;

  const int64_t r = row_block * kTile + threadIdx.x;  // position within the segment
  const NmsBox<T> a = boxes[start + r];
  uint64_t bits = 0;
  const int64_t first = row_block == col_block ? static_cast<int64_t>(threadIdx.x) + 1 : 0;
  for (int64_t c = first; c < cols; ++c) {
    if (nms_suppresses(a, col_boxes[c], pred)) bits |= uint64_t(1) << c;
  }
  mask[seg.mask_offset[s] + r * seg.words[s] + col_block] = bits;
}

// Boxes that fail the score threshold start out removed.
__global__ void mark_invalid_kernel(const bool* __restrict__ valid, const int64_t* __restrict__ segment_of,
                                    Segments seg, int64_t n, uint64_t* __restrict__ removed) {
  VO_CUDA_1D_KERNEL_LOOP(k, n) {
    if (valid[k]) continue;
    const int64_t s = segment_of[k];
    const int64_t i = k - seg.start[s];
    atomicOr(reinterpret_cast<unsigned long long*>(removed + seg.removed_offset[s] + i / 64),
             static_cast<unsigned long long>(1) << (i % 64));
  }
}

// One block per segment: the greedy pass. Every thread runs the same loop
// (the removed word it reads is the same for all); only a kept box changes
// the removed set, and the block synchronizes after each change.
__global__ void nms_reduce_kernel(const uint64_t* __restrict__ mask, Segments seg, int64_t max_keep,
                                  uint64_t* __restrict__ removed, uint8_t* __restrict__ keep) {
  const int s = blockIdx.x;
  const int64_t start = seg.start[s], length = seg.length[s], words = seg.words[s];
  const uint64_t* rows = mask + seg.mask_offset[s];
  uint64_t* gone = removed + seg.removed_offset[s];
  int64_t kept = 0;
  for (int64_t i = 0; i < length && kept < max_keep; ++i) {
    if ((gone[i / 64] >> (i % 64)) & 1) continue;
    if (threadIdx.x == 0) keep[start + i] = 1;
    ++kept;
    for (int64_t w = i / 64 + threadIdx.x; w < words; w += blockDim.x) gone[w] |= rows[i * words + w];
    __syncthreads();
  }
}

template <typename scalar_t>
at::Tensor nms_cuda_impl(const at::Tensor& boxes, const at::Tensor& scores, const at::Tensor* idxs,
                         double iou_threshold, std::optional<double> score_threshold,
                         std::optional<int64_t> max_output) {
  using T = box_acc_t<scalar_t>;
  const auto opts = boxes.options();
  const int64_t n = boxes.size(0);
  const int64_t max_keep = max_output ? *max_output : n;
  if (n == 0 || max_keep == 0) return at::empty({0}, opts.dtype(at::kLong));

  // Score order (stable; NaN first), then grouped by class, still stable.
  const at::Tensor by_score =
      std::get<1>(canonical_scores(scores).sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
  at::Tensor order = by_score;
  at::Tensor sorted_classes;
  if (idxs) {
    const at::Tensor cls = idxs->to(at::kLong).index_select(0, by_score);
    auto sorted = cls.sort(/*stable=*/true, /*dim=*/0, /*descending=*/false);
    sorted_classes = std::get<0>(sorted);
    order = by_score.index_select(0, std::get<1>(sorted));
  }

  // Segments (classes), read back to size the launches.
  std::vector<int64_t> lengths;
  if (idxs) {
    const at::Tensor counts = std::get<2>(at::unique_consecutive(sorted_classes, false, true)).cpu();
    lengths.assign(counts.data_ptr<int64_t>(), counts.data_ptr<int64_t>() + counts.numel());
  } else {
    lengths.push_back(n);
  }
  const int64_t nseg = static_cast<int64_t>(lengths.size());
  std::vector<int64_t> table(5 * nseg);  // start, length, words, mask offset, removed offset
  std::vector<int32_t> tiles;
  int64_t pos = 0, mask_words = 0, removed_words = 0;
  for (int64_t s = 0; s < nseg; ++s) {
    const int64_t len = lengths[s], words = (len + kTile - 1) / kTile;
    table[s] = pos;
    table[nseg + s] = len;
    table[2 * nseg + s] = words;
    table[3 * nseg + s] = mask_words;
    table[4 * nseg + s] = removed_words;
    for (int64_t rb = 0; rb < words; ++rb) {
      for (int64_t cb = rb; cb < words; ++cb) {
        tiles.insert(tiles.end(), {static_cast<int32_t>(s), static_cast<int32_t>(rb), static_cast<int32_t>(cb)});
      }
    }
    pos += len;
    mask_words += len * words;
    removed_words += words;
  }
  const at::Tensor table_dev = at::from_blob(table.data(), {5 * nseg}, at::kLong).to(boxes.device());
  const int64_t ntiles = static_cast<int64_t>(tiles.size()) / 3;
  const at::Tensor tiles_dev = at::from_blob(tiles.data(), {3 * ntiles}, at::kInt).to(boxes.device());
  const int64_t* tp = table_dev.data_ptr<int64_t>();
  const Segments seg{tp, tp + nseg, tp + 2 * nseg, tp + 3 * nseg, tp + 4 * nseg};
  const auto stream = at::cuda::getCurrentCUDAStream();

  at::Tensor sorted_boxes = at::empty({n, 5}, opts.dtype(c10::CppTypeToScalarType<T>::value));
  auto* sb = reinterpret_cast<NmsBox<T>*>(sorted_boxes.data_ptr<T>());
  const at::Tensor b = boxes.contiguous();
  gather_boxes_kernel<scalar_t, T><<<cuda::blocks_for(n), cuda::kThreads, 0, stream>>>(
      b.data_ptr<scalar_t>(), order.data_ptr<int64_t>(), n, sb);
  C10_CUDA_KERNEL_LAUNCH_CHECK();

  at::Tensor mask = at::empty({std::max<int64_t>(mask_words, 1)}, opts.dtype(at::kLong));
  auto* mp = reinterpret_cast<uint64_t*>(mask.data_ptr<int64_t>());
  nms_mask_kernel<T><<<static_cast<unsigned int>(ntiles), kTile, 0, stream>>>(
      sb, seg, tiles_dev.data_ptr<int32_t>(), make_nms_predicate(iou_threshold), mp);
  C10_CUDA_KERNEL_LAUNCH_CHECK();

  at::Tensor removed = at::zeros({std::max<int64_t>(removed_words, 1)}, opts.dtype(at::kLong));
  auto* rp = reinterpret_cast<uint64_t*>(removed.data_ptr<int64_t>());
  if (score_threshold) {
    // NaN fails: gt is false for NaN.
    const at::Tensor valid = scores.index_select(0, order).to(at::kDouble).gt(*score_threshold);
    const at::Tensor starts = table_dev.slice(0, 0, nseg);
    const at::Tensor segment_of =
        at::searchsorted(starts, at::arange(n, opts.dtype(at::kLong)), /*out_int32=*/false, /*right=*/true) - 1;
    mark_invalid_kernel<<<cuda::blocks_for(n), cuda::kThreads, 0, stream>>>(
        valid.data_ptr<bool>(), segment_of.data_ptr<int64_t>(), seg, n, rp);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }

  at::Tensor keep = at::zeros({n}, opts.dtype(at::kByte));
  nms_reduce_kernel<<<static_cast<unsigned int>(nseg), 256, 0, stream>>>(mp, seg, max_keep, rp,
                                                                          keep.data_ptr<uint8_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();

  // Kept original indices, in descending score with ties by index.
  at::Tensor kept = order.index_select(0, keep.nonzero().squeeze(1));
  if (idxs) {
    const at::Tensor rank = at::empty({n}, opts.dtype(at::kLong)).scatter_(0, by_score, at::arange(n, opts.dtype(at::kLong)));
    kept = kept.index_select(0, std::get<1>(rank.index_select(0, kept).sort()));
  }
  return kept.slice(0, 0, std::min<int64_t>(kept.size(0), max_keep));
}

at::Tensor nms_cuda(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold,
                    std::optional<double> score_threshold, std::optional<int64_t> max_output) {
  check_nms_args(boxes, scores, nullptr, max_output, "nms");
  const c10::cuda::CUDAGuard guard(boxes.device());
  at::Tensor out;
  VO_DISPATCH_FLOAT_BOX_TYPES(boxes.scalar_type(), "nms", [&] {
    out = nms_cuda_impl<scalar_t>(boxes, scores, nullptr, iou_threshold, score_threshold, max_output);
  });
  return out;
}

at::Tensor batched_nms_cuda(const at::Tensor& boxes, const at::Tensor& scores, const at::Tensor& idxs,
                            double iou_threshold, std::optional<double> score_threshold,
                            std::optional<int64_t> max_output) {
  check_nms_args(boxes, scores, &idxs, max_output, "batched_nms");
  const c10::cuda::CUDAGuard guard(boxes.device());
  at::Tensor out;
  VO_DISPATCH_FLOAT_BOX_TYPES(boxes.scalar_type(), "batched_nms", [&] {
    out = nms_cuda_impl<scalar_t>(boxes, scores, &idxs, iou_threshold, score_threshold, max_output);
  });
  return out;
}

// ---------------------------------------------------------------- padded_nms
//
// One image per mask slice and per reduction block, all sizes known on the
// host: no synchronization. Classes, when given, enter the per-pair test
// (boxes of different classes never suppress each other), which is exactly
// per-class NMS merged in score order.

template <typename scalar_t, typename T>
__global__ void padded_gather_kernel(const scalar_t* __restrict__ boxes, const int64_t* __restrict__ order,
                                     int64_t B, int64_t N, NmsBox<T>* __restrict__ out) {
  VO_CUDA_1D_KERNEL_LOOP(k, B * N) {
    const scalar_t* q = boxes + 4 * ((k / N) * N + order[k]);
    out[k] = make_nms_box<T>(static_cast<T>(q[0]), static_cast<T>(q[1]), static_cast<T>(q[2]), static_cast<T>(q[3]));
  }
}

// Grid: (column block, row block, image); images beyond gridDim.z loop.
template <typename T>
__global__ void padded_mask_kernel(const NmsBox<T>* __restrict__ boxes, const int64_t* __restrict__ classes,
                                   int64_t B, int64_t N, int64_t words, NmsPredicate pred,
                                   uint64_t* __restrict__ mask) {
  const int64_t row_block = blockIdx.y, col_block = blockIdx.x;
  if (col_block < row_block) return;  // the lower triangle is never read
  const int64_t rows = min(static_cast<int64_t>(kTile), N - row_block * kTile);
  const int64_t cols = min(static_cast<int64_t>(kTile), N - col_block * kTile);
  __shared__ NmsBox<T> col_boxes[kTile];
  __shared__ int64_t col_classes[kTile];
  for (int64_t img = blockIdx.z; img < B; img += gridDim.z) {
    const int64_t base = img * N;
    __syncthreads();  // the previous image's columns are no longer read
    if (threadIdx.x < cols) {
      col_boxes[threadIdx.x] = boxes[base + col_block * kTile + threadIdx.x];
      col_classes[threadIdx.x] = classes ? classes[base + col_block * kTile + threadIdx.x] : 0;
    }
    __syncthreads();
    if (threadIdx.x < rows) {
      const int64_t r = row_block * kTile + threadIdx.x;
      const NmsBox<T> a = boxes[base + r];
      const int64_t cls = classes ? classes[base + r] : 0;
      uint64_t bits = 0;
      const int64_t first = row_block == col_block ? static_cast<int64_t>(threadIdx.x) + 1 : 0;
      for (int64_t c = first; c < cols; ++c) {
        if (col_classes[c] == cls && nms_suppresses(a, col_boxes[c], pred)) bits |= uint64_t(1) << c;
      }
      mask[(base + r) * words + col_block] = bits;
    }
  }
}

// One block per image: boxes failing the score threshold start removed;
// then the greedy pass writes the kept indices straight into the output.
__global__ void padded_reduce_kernel(const uint64_t* __restrict__ mask, const int64_t* __restrict__ order,
                                     const bool* __restrict__ valid, int64_t N, int64_t words, int64_t max_keep,
                                     uint64_t* __restrict__ removed, int64_t* __restrict__ keep,
                                     int64_t* __restrict__ counts) {
  const int64_t img = blockIdx.x;
  uint64_t* gone = removed + img * words;
  const uint64_t* rows = mask + img * N * words;
  for (int64_t w = threadIdx.x; w < words; w += blockDim.x) {
    uint64_t bits = 0;
    if (valid) {
      for (int k = 0; k < 64; ++k) {
        const int64_t i = w * 64 + k;
        if (i < N && !valid[img * N + i]) bits |= uint64_t(1) << k;
      }
    }
    gone[w] = bits;
  }
  __syncthreads();
  int64_t kept = 0;
  for (int64_t i = 0; i < N && kept < max_keep; ++i) {
    if ((gone[i / 64] >> (i % 64)) & 1) continue;
    if (threadIdx.x == 0) keep[img * max_keep + kept] = order[img * N + i];
    ++kept;
    for (int64_t w = i / 64 + threadIdx.x; w < words; w += blockDim.x) gone[w] |= rows[i * words + w];
    __syncthreads();
  }
  if (threadIdx.x == 0) counts[img] = kept;
}

std::tuple<at::Tensor, at::Tensor> padded_nms_cuda(const at::Tensor& boxes, const at::Tensor& scores,
                                                   double iou_threshold, int64_t max_output,
                                                   const std::optional<at::Tensor>& idxs,
                                                   std::optional<double> score_threshold) {
  check_padded_nms_args(boxes, scores, idxs ? &*idxs : nullptr, max_output);
  const c10::cuda::CUDAGuard guard(boxes.device());
  const auto opts = boxes.options();
  const int64_t B = boxes.size(0), N = boxes.size(1);
  at::Tensor keep = at::full({B, max_output}, -1, opts.dtype(at::kLong));
  at::Tensor counts = at::zeros({B}, opts.dtype(at::kLong));
  if (B == 0 || N == 0 || max_output == 0) return {keep, counts};

  TORCH_CHECK(N <= kMaxPaddedBoxes, "visionops.padded_nms: at most ", kMaxPaddedBoxes,
              " boxes per image on CUDA (the suppression mask's launch grid), got ", N);
  const at::Tensor order =
      std::get<1>(canonical_scores(scores).sort(/*stable=*/true, /*dim=*/1, /*descending=*/true)).contiguous();
  const at::Tensor classes = idxs ? idxs->to(at::kLong).gather(1, order).contiguous() : at::Tensor();
  const at::Tensor valid =
      score_threshold ? scores.gather(1, order).to(at::kDouble).gt(*score_threshold).contiguous() : at::Tensor();
  const int64_t words = (N + kTile - 1) / kTile;
  const int64_t mask_words = N * words;  // per image
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(B, kPaddedMaskBytes / 8 / mask_words));
  const auto stream = at::cuda::getCurrentCUDAStream();
  at::Tensor mask = at::empty({chunk * mask_words}, opts.dtype(at::kLong));
  at::Tensor removed = at::empty({chunk * words}, opts.dtype(at::kLong));
  auto* mask_bits = reinterpret_cast<uint64_t*>(mask.data_ptr<int64_t>());
  VO_DISPATCH_FLOAT_BOX_TYPES(boxes.scalar_type(), "padded_nms", [&] {
    using T = box_acc_t<scalar_t>;
    at::Tensor sorted_boxes = at::empty({B * N, 5}, opts.dtype(c10::CppTypeToScalarType<T>::value));
    auto* sb = reinterpret_cast<NmsBox<T>*>(sorted_boxes.data_ptr<T>());
    const at::Tensor b = boxes.contiguous();
    padded_gather_kernel<scalar_t, T><<<cuda::blocks_for(B * N), cuda::kThreads, 0, stream>>>(
        b.data_ptr<scalar_t>(), order.data_ptr<int64_t>(), B, N, sb);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    // Stream order makes the buffers free for the next chunk once its reduce ran.
    for (int64_t first = 0; first < B; first += chunk) {
      const int64_t nb = std::min(chunk, B - first);
      const dim3 grid(static_cast<unsigned int>(words), static_cast<unsigned int>(words),
                      static_cast<unsigned int>(std::min<int64_t>(nb, 65535)));
      padded_mask_kernel<T><<<grid, kTile, 0, stream>>>(sb + first * N,
                                                        idxs ? classes.data_ptr<int64_t>() + first * N : nullptr, nb,
                                                        N, words, make_nms_predicate(iou_threshold), mask_bits);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      padded_reduce_kernel<<<static_cast<unsigned int>(nb), 256, 0, stream>>>(
          mask_bits, order.data_ptr<int64_t>() + first * N,
          score_threshold ? valid.data_ptr<bool>() + first * N : nullptr, N, words, max_output,
          reinterpret_cast<uint64_t*>(removed.data_ptr<int64_t>()), keep.data_ptr<int64_t>() + first * max_output,
          counts.data_ptr<int64_t>() + first);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  });
  return {keep, counts};
}

}  // namespace
}  // namespace vo

TORCH_LIBRARY_IMPL(visionops, CUDA, m) {
  m.impl("nms", &vo::nms_cuda);
  m.impl("batched_nms", &vo::batched_nms_cuda);
  m.impl("padded_nms", &vo::padded_nms_cuda);
}
