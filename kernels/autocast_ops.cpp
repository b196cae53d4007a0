// The differentiable dtype conversion (ops::to_dtype) and the autocast cast policy.
#include <map>
#include <memory>
#include <utility>

#include "engine/autocast.h"
#include "engine/autograd.h"
#include "kernels/autocast.h"
#include "kernels/dispatch.h"
#include "kernels/ops.h"

namespace dp::ops {

namespace {

// The gradient goes back in the dtype the input had: this is what keeps the gradients of
// float32 master weights float32 when the forward pass ran in bf16.
struct CastNode final : Node {
  DType source;
  explicit CastNode(DType s) : source(s) {}
  const char* name() const override { return "to_dtype"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    return {g.dtype() == source ? g : cast(g, source)};
  }
};

// The casts of parameters made in the current autocast region, keyed by storage and offset;
// a cached cast is valid while the storage is alive and its version unchanged.
struct WeightCache {
  struct Entry {
    std::weak_ptr<StorageImpl> storage;
    uint64_t version = 0;
    Shape shape;
    Tensor cast;
  };
  uint64_t epoch = ~uint64_t{0};
  std::map<std::pair<const StorageImpl*, int64_t>, Entry> entries;
};
thread_local WeightCache g_weight_cache;

}  // namespace

Tensor to_dtype(const Tensor& x, DType dtype) {
  DP_CHECK(x.defined(), "to_dtype: input is undefined", "pass a tensor");
  if (x.dtype() == dtype) return x;
  Tensor y = cast(x, dtype);
  if (any_requires_grad({&x})) {
    DP_CHECK(is_floating(dtype), fmt::format("to_dtype: cannot differentiate a cast of {} to {}", x.str(),
                                             dtype_name(dtype)),
             "cast to a floating dtype, or detach() the input first");
    record_node(y, std::make_shared<CastNode>(x.dtype()), {x});
  }
  return y;
}

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

Tensor lower_weight(const Tensor& w) {
  const DType target = autocast_dtype();
  if (!w.defined() || w.dtype() != DType::Float32 || !w.is_leaf()) return lower(w);
  WeightCache& cache = g_weight_cache;
  if (cache.epoch != autocast_epoch()) {
    cache.entries.clear();
    cache.epoch = autocast_epoch();
  }
  const auto& storage = w.impl()->storage;
  const auto key = std::make_pair(static_cast<const StorageImpl*>(storage.get()), w.impl()->offset);
  Tensor data;
  auto it = cache.entries.find(key);
  if (it != cache.entries.end() && it->second.storage.lock() == storage &&
      it->second.version == w.version() && it->second.shape == w.shape() && it->second.cast.dtype() == target) {
    data = it->second.cast;
  } else {
    data = cast(w, target);
    cache.entries[key] = {storage, w.version(), w.shape(), data};
  }
  Tensor out = data.detach();
  if (any_requires_grad({&w})) record_node(out, std::make_shared<CastNode>(w.dtype()), {w});
  return out;
}

}  // namespace autocast
}  // namespace dp::ops
