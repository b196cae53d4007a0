#include "kernels/elementwise.h"

#include "engine/thread_pool.h"
#include "kernels/cpu/type_dispatch.h"

namespace dp::kernels::cpu {

namespace {
constexpr int64_t kGrain = 1 << 14;

template <class From, class To>
void convert(const From* x, To* y, int64_t n) {
  parallel_for(0, n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      if constexpr (std::is_same_v<To, bfloat16>)
        y[i] = bfloat16(static_cast<float>(x[i]));
      else if constexpr (std::is_same_v<From, bfloat16>)
        y[i] = static_cast<To>(static_cast<float>(x[i]));
      else
        y[i] = static_cast<To>(x[i]);
    }
  });
}

template <class From>
void convert_to(const From* x, Tensor& y) {
  int64_t n = y.numel();
  switch (y.dtype()) {
    case DType::Float32: return convert(x, y.data<float>(), n);
    case DType::Float64: return convert(x, y.data<double>(), n);
    case DType::BFloat16: return convert(x, y.data<bfloat16>(), n);
    case DType::Int32: return convert(x, y.data<int32_t>(), n);
    case DType::Int64: return convert(x, y.data<int64_t>(), n);
    case DType::UInt8: return convert(x, y.data<uint8_t>(), n);
    default: DP_THROW(fmt::format("cast to {} is not supported", dtype_name(y.dtype())), "");
  }
}
}  // namespace

void fill(Tensor& t, double value) {
  int64_t n = t.numel();
  auto run = [&](auto* p, auto v) { std::fill(p, p + n, v); };
  switch (t.dtype()) {
    case DType::Float32: return run(t.data<float>(), static_cast<float>(value));
    case DType::Float64: return run(t.data<double>(), value);
    case DType::BFloat16: return run(t.data<bfloat16>(), bfloat16(static_cast<float>(value)));
    case DType::Int32: return run(t.data<int32_t>(), static_cast<int32_t>(value));
    case DType::Int64: return run(t.data<int64_t>(), static_cast<int64_t>(value));
    case DType::UInt8: return run(t.data<uint8_t>(), static_cast<uint8_t>(value));
    default: DP_THROW(fmt::format("fill of {} is not supported", dtype_name(t.dtype())), "");
  }
}

void cast(const Tensor& x, Tensor& y) {
  switch (x.dtype()) {
    case DType::Float32: return convert_to(x.data<float>(), y);
    case DType::Float64: return convert_to(x.data<double>(), y);
    case DType::BFloat16: return convert_to(x.data<bfloat16>(), y);
    case DType::Int32: return convert_to(x.data<int32_t>(), y);
    case DType::Int64: return convert_to(x.data<int64_t>(), y);
    case DType::UInt8: return convert_to(x.data<uint8_t>(), y);
    default: DP_THROW(fmt::format("cast from {} is not supported", dtype_name(x.dtype())), "");
  }
}

void add(const Tensor& a, const Tensor& b, Tensor& out, bool relu) {
  DP_CPU_FLOAT_TYPES(a.dtype(), "add", [&] {
    const scalar_t* pa = a.data<scalar_t>();
    const scalar_t* pb = b.data<scalar_t>();
    scalar_t* po = out.data<scalar_t>();
    parallel_for(0, a.numel(), kGrain, [&](int64_t s, int64_t e) {
      if (relu) {
        for (int64_t i = s; i < e; ++i) {
          const scalar_t v = pa[i] + pb[i];
          po[i] = v > scalar_t(0) ? v : scalar_t(0);
        }
      } else {
        for (int64_t i = s; i < e; ++i) po[i] = pa[i] + pb[i];
      }
    });
  });
}

void axpy(double alpha, const Tensor& x, Tensor& y) {
  DP_CPU_FLOAT_TYPES(x.dtype(), "axpy", [&] {
    const scalar_t* px = x.data<scalar_t>();
    scalar_t* py = y.data<scalar_t>();
    const scalar_t a = static_cast<scalar_t>(alpha);
    parallel_for(0, x.numel(), kGrain, [&](int64_t s, int64_t e) {
      for (int64_t i = s; i < e; ++i) py[i] += a * px[i];
    });
  });
}

void scale(const Tensor& x, double s, Tensor& out) {
  DP_CPU_FLOAT_TYPES(x.dtype(), "scale", [&] {
    const scalar_t* px = x.data<scalar_t>();
    scalar_t* po = out.data<scalar_t>();
    const scalar_t f = static_cast<scalar_t>(s);
    parallel_for(0, x.numel(), kGrain, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) po[i] = px[i] * f;
    });
  });
}

void scale_by_tensor(const Tensor& x, const Tensor& s, Tensor& out) {
  DP_CPU_FLOAT_TYPES(x.dtype(), "scale_by_tensor", [&] { scale(x, static_cast<double>(s.data<scalar_t>()[0]), out); });
}

void relu_forward(const Tensor& x, Tensor& y) {
  DP_CPU_FLOAT_TYPES(x.dtype(), "relu", [&] {
    const scalar_t* px = x.data<scalar_t>();
    scalar_t* py = y.data<scalar_t>();
    parallel_for(0, x.numel(), kGrain, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) py[i] = px[i] > scalar_t(0) ? px[i] : scalar_t(0);
    });
  });
}

void relu_backward(const Tensor& y, const Tensor& dy, Tensor& dx) {
  DP_CPU_FLOAT_TYPES(y.dtype(), "relu_backward", [&] {
    const scalar_t* py = y.data<scalar_t>();
    const scalar_t* pdy = dy.data<scalar_t>();
    scalar_t* pdx = dx.data<scalar_t>();
    parallel_for(0, y.numel(), kGrain, [&](int64_t b, int64_t e) {
      // Both loads unconditional: the select vectorises (a conditional load of dy does not).
      for (int64_t i = b; i < e; ++i) {
        const scalar_t g = pdy[i];
        pdx[i] = py[i] > scalar_t(0) ? g : scalar_t(0);
      }
    });
  });
}

void sum_all(const Tensor& x, Tensor& out) {
  // Serial double accumulation: exact enough and independent of the thread count.
  DP_CPU_FLOAT_TYPES(x.dtype(), "sum", [&] {
    const scalar_t* px = x.data<scalar_t>();
    double acc = 0.0;
    for (int64_t i = 0, n = x.numel(); i < n; ++i) acc += px[i];
    out.data<scalar_t>()[0] = static_cast<scalar_t>(acc);
  });
}

void broadcast_scalar(const Tensor& s, double factor, Tensor& out) {
  DP_CPU_FLOAT_TYPES(out.dtype(), "broadcast_scalar", [&] {
    scalar_t v = static_cast<scalar_t>(s.data<scalar_t>()[0] * factor);
    scalar_t* po = out.data<scalar_t>();
    std::fill(po, po + out.numel(), v);
  });
}

}  // namespace dp::kernels::cpu
