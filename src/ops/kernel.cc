#include "ops/kernel.h"

#include <algorithm>
#include <cstring>

namespace parallax {

Result<Tensor*> KernelContext::Output(int i, DType dtype, const Shape& shape) {
  if (i < 0 || i >= num_outputs())
    return Error("kernel asked for output " + std::to_string(i) + " but the node has " +
                 std::to_string(num_outputs()));
  for (int64_t d : shape)
    if (d < 0) return Error("negative output dimension in " + ShapeToString(shape));
  PX_ASSIGN_OR_RETURN(Tensor t, allocator_->Allocate(i, dtype, shape));
  outputs_[static_cast<size_t>(i)] = std::move(t);
  if (i < 64) shared_ &= ~(uint64_t{1} << i);
  return &outputs_[static_cast<size_t>(i)];
}

Result<Tensor*> KernelContext::OutputOver(int input, DType dtype, const Shape& shape) {
  const bool valid = std::all_of(shape.begin(), shape.end(), [](int64_t d) { return d >= 0; });
  if (valid && input == reusable_input_ && has_input(input) && num_outputs() > 0) {
    const Tensor& x = this->input(input);
    if (!x.is_sequence() && !x.is_none() && x.dtype() == dtype && x.numel() == NumElements(shape) &&
        x.numel() > 0) {
      outputs_[0] = x.Reshaped(shape);
      shared_ &= ~uint64_t{1};
      return &outputs_[0];
    }
  }
  return Output(0, dtype, shape);
}

bool KernelContext::ForwardInput(const Shape& shape) {
  if (!may_forward_ || outputs_.empty() || !has_input(0)) return false;
  const Tensor& x = input(0);
  if (x.is_sequence() || x.is_none() || NumElements(shape) != x.numel()) return false;
  outputs_[0] = x.Reshaped(shape);
  return true;
}

Status KernelContext::SetOutput(int i, Tensor t) {
  if (i < 0 || i >= num_outputs()) return Error("output index out of range");
  if (t.is_view()) {  // Views may alias planned memory: copy into our slot.
    PX_ASSIGN_OR_RETURN(Tensor * out, Output(i, t.dtype(), t.shape()));
    if (t.nbytes()) std::memcpy(out->raw_data(), t.raw_data(), t.nbytes());
    return Status::Ok();
  }
  outputs_[static_cast<size_t>(i)] = std::move(t);
  if (i < 64) shared_ |= uint64_t{1} << i;
  return Status::Ok();
}

Status KernelContext::Error(const std::string& message) const {
  return InvalidArgument(node_.Describe() + ": " + message);
}

Status KernelInit::Error(const std::string& message) const {
  return InvalidArgument(node.Describe() + ": " + message);
}

namespace {
class FnKernelImpl : public Kernel {
 public:
  explicit FnKernelImpl(KernelFn fn) : fn_(fn) {}
  Status Run(KernelContext& ctx) override { return fn_(ctx); }

 private:
  KernelFn fn_;
};
}  // namespace

KernelFactory FnKernel(KernelFn fn) {
  return [fn](const KernelInit&) -> Result<std::unique_ptr<Kernel>> {
    return std::unique_ptr<Kernel>(new FnKernelImpl(fn));
  };
}

}  // namespace parallax
