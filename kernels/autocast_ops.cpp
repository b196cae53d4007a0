// The autocast cast policy: which ops cast, and the per-region cache of cast weights.
#include <map>
#include <tuple>
#include <memory>
#include <utility>

#include "engine/autocast.h"
#include "engine/autograd.h"
#include "kernels/autocast.h"
#include "kernels/convert.h"
#include "kernels/dispatch.h"
#include "kernels/ops.h"

namespace dp::kernels {

namespace {

// The casts of parameters made in the current autocast region, keyed by storage and offset;
// a cached cast is valid while the storage is alive and its version unchanged.
struct WeightCache {
  struct Entry {
    std::weak_ptr<StorageImpl> storage;
    uint64_t version = 0;
    Shape shape;
    Tensor cast;  // in the autocast dtype and the requested memory format
  };
  uint64_t epoch = ~uint64_t{0};
  std::map<std::tuple<const StorageImpl*, int64_t, MemoryFormat>, Entry> entries;
};
thread_local WeightCache g_weight_cache;

}  // namespace

namespace autocast {

bool applies_to(const char* op, std::initializer_list<const Tensor*> tensors) {
  if (!autocast_enabled()) return false;
  bool any_float32 = false;
  for (const Tensor* t : tensors) {
    if (t == nullptr || !t->defined() || t->dtype() != DType::Float32) continue;
    any_float32 = true;
    DP_CHECK(t->device().is_cuda(),
             fmt::format("{}: bf16 mode is CUDA-only, got the CPU tensor {}", op, t->str()),
             "move the model and the batch to the GPU, or train in float32 on the CPU");
  }
  if (!any_float32) return false;
  DP_CHECK(autocast_dtype() == DType::BFloat16,
           fmt::format("{}: autocast to {} is not supported", op, dtype_name(autocast_dtype())),
           "use dp::AutocastGuard(DType::BFloat16)");
  return true;
}

Tensor lower(const Tensor& t) {
  if (!t.defined() || t.dtype() != DType::Float32) return t;
  return to_dtype(t, autocast_dtype());
}

Tensor lower_weight(const Tensor& w, MemoryFormat format) {
  const DType target = autocast_dtype();
  if (!w.defined() || w.dtype() != DType::Float32 || !w.is_leaf()) return to_memory_format(lower(w), format);
  WeightCache& cache = g_weight_cache;
  if (cache.epoch != autocast_epoch()) {
    cache.entries.clear();
    cache.epoch = autocast_epoch();
  }
  const auto& storage = w.impl()->storage;
  const auto key = std::make_tuple(static_cast<const StorageImpl*>(storage.get()), w.impl()->offset, format);
  Tensor data;
  auto it = cache.entries.find(key);
  if (it != cache.entries.end() && it->second.storage.lock() == storage &&
      it->second.version == w.version() && it->second.shape == w.shape() && it->second.cast.dtype() == target) {
    data = it->second.cast;
  } else {
    data = convert(w, target, format);
    cache.entries[key] = {storage, w.version(), w.shape(), data};
  }
  Tensor out = data.detach();
  detail::record_conversion(out, w);
  return out;
}

}  // namespace autocast
}  // namespace dp::kernels
