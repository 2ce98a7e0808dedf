// Counts the operations a stretch of code issues, through libtorch's
// RecordFunction callbacks (what torch.profiler builds on). Counted: each ATen
// operation called from outside ATen (by our code, or by an autograd node of
// the backward pass), once, whatever it calls inside; operations that only
// make a view or allocate are not counted, and what they call in turn (a copy
// made by a reshape) is. The fused LIF kernels record themselves
// (spikecv::lif_forward, spikecv::lif_backward). On a GPU each counted
// operation is one kernel launch or a few. Built by worker/build.rs.
#include <ATen/record_function.h>

#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace {

struct Frame {
  // Whether an operation called from here is issued from outside ATen: an
  // autograd node, or a view/allocation operation that was itself issued.
  bool opens = false;
};

thread_local std::vector<Frame> stack;
std::mutex counts_lock;
std::map<std::string, long long> counts;
at::CallbackHandle handle = 0;

// Operations that only describe memory (views, allocations, no-op
// conversions when they call nothing else): no device work.
const std::set<std::string> &metadata_only() {
  static const std::set<std::string> names = {
      "aten::empty",         "aten::empty_strided", "aten::empty_like",   "aten::view",
      "aten::_reshape_alias", "aten::reshape",      "aten::as_strided",   "aten::detach",
      "aten::alias",         "aten::expand",        "aten::permute",      "aten::select",
      "aten::slice",         "aten::t",             "aten::transpose",    "aten::unsqueeze",
      "aten::squeeze",       "aten::resize_",       "aten::lift_fresh",   "aten::_unsafe_view",
      "aten::unbind",        "aten::split",         "aten::chunk",        "aten::narrow",
      "aten::contiguous",    "aten::to",            "aten::flatten",      "aten::requires_grad_",
      "aten::set_requires_grad", "aten::view_as",   "aten::expand_as",    "aten::numpy_T",
      "aten::_has_compatible_shallow_copy_type",    "aten::is_nonzero",   "aten::result_type",
      "detach",              "detach_",            "aten::detach_",
  };
  return names;
}

// The autograd engine's record of running a node: a frame around the node,
// not an operation.
bool engine_frame(const char *name) {
  return std::strncmp(name, "autograd::", 10) == 0;
}

std::unique_ptr<at::ObserverContext> on_start(const at::RecordFunction &fn) {
  bool from_outside = stack.empty() || stack.back().opens;
  bool is_operation = fn.scope() == at::RecordScope::FUNCTION && !engine_frame(fn.name());
  bool issued = from_outside && is_operation;
  bool metadata = metadata_only().count(fn.name()) > 0;
  if (issued && !metadata) {
    std::lock_guard<std::mutex> guard(counts_lock);
    counts[fn.name()] += 1;
  }
  stack.push_back(Frame{!is_operation || (issued && metadata)});
  return nullptr;
}

void on_end(const at::RecordFunction &, at::ObserverContext *) {
  if (!stack.empty()) {
    stack.pop_back();
  }
}

}  // namespace

extern "C" {

// Starts counting (clearing earlier counts). 0, or 1 if already counting.
int spikecv_op_count_start() {
  std::lock_guard<std::mutex> guard(counts_lock);
  if (handle != 0) {
    return 1;
  }
  counts.clear();
  handle = at::addGlobalCallback(
      at::RecordFunctionCallback(on_start, on_end)
          .scopes({at::RecordScope::FUNCTION, at::RecordScope::BACKWARD_FUNCTION}));
  return 0;
}

// Stops counting; the counts stay readable.
void spikecv_op_count_stop() {
  std::lock_guard<std::mutex> guard(counts_lock);
  if (handle != 0) {
    at::removeCallback(handle);
    handle = 0;
  }
}

// Distinct operations counted.
size_t spikecv_op_count_len() {
  std::lock_guard<std::mutex> guard(counts_lock);
  return counts.size();
}

// The i-th operation (by name order): its name, cut to `name_len` bytes and
// NUL-terminated, and its count. 0, or 1 if there is no i-th.
int spikecv_op_count_get(size_t i, char *name, size_t name_len, long long *count) {
  std::lock_guard<std::mutex> guard(counts_lock);
  if (i >= counts.size() || name_len == 0) {
    return 1;
  }
  auto it = counts.begin();
  std::advance(it, static_cast<long>(i));
  std::strncpy(name, it->first.c_str(), name_len - 1);
  name[name_len - 1] = '\0';
  *count = it->second;
  return 0;
}

}  // extern "C"
