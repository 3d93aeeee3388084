#define KERNEL_NS amx
#define KERNEL_ISA "amx"
#include "kernels_impl.inc"
namespace tessera { const KernelTable& kernels_amx() { return amx::table; } }
