#define KERNEL_NS generic
#define KERNEL_ISA "generic"
#include "kernels_impl.inc"
namespace tessera { const KernelTable& kernels_generic() { return generic::table; } }
