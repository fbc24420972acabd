/* Context switch primitives for x86-64 (SysV ABI, ELF).
 *
 * A switch is a function call, so only what a call preserves is saved:
 *
 *   offset  field   (layout: context.h, checked there by static_assert)
 *   0       rsp     stack pointer as it will be after our `ret`
 *   8       rip     where to continue (our return address)
 *   16..56  rbx rbp r12 r13 r14 r15
 *   64      mxcsr   SSE control (rounding, exception masks)
 *   68      fpucw   x87 control word
 *
 * Caller-saved registers, flags and the vector registers are dead across a
 * call and are not saved; an asynchronous interruption (a notification)
 * saves the full state through the kernel's signal frame instead.
 * Every entry onto a new stack calls the target, so the callee sees
 * rsp = 8 (mod 16) exactly as after any call.
 */
#include "context.h"

/* Call frame information (CFI). Debuggers and the unwinder must be able to
 * walk the stack at every instruction of a switch, since a signal, a
 * breakpoint or a core dump can stop a thread anywhere in one. Until the
 * stack pointer moves, the caller is the context being saved; the macros
 * below then say that its callee-saved registers are in the save area
 * (once SAVE_CALLER_CONTEXT stored them), so the caller's frames keep
 * their values even after the registers are loaded with the next
 * context's. From the instruction that loads the new stack pointer on,
 * the caller is the context being loaded (parlib_ctx_swap and
 * parlib_ctx_restore), or there is none: vcore context and the exit path
 * start on a fresh stack, and their backtraces end there (the saved
 * uthread may already run elsewhere, so unwinding into it would show a
 * stale stack).
 *
 * DWARF register numbers: rbx 3, rsi 4, rdi 5, rbp 6, rsp 7, r12..r15
 * 12..15, return address (rip) 16. The escapes are DW_CFA_expression
 * (0x10) reg, length 2, DW_OP_breg<base> (0x70 + base) offset: "the
 * register is saved at base + offset". */
.macro CFI_SAVED_AT base, reg, off
	.cfi_escape 0x10, \reg, 0x02, 0x70 + \base, \off
.endm
/* The caller's callee-saved registers are in the save area at %rdi. */
.macro CFI_CALLER_SAVED_AT_RDI
	CFI_SAVED_AT 5, 3, PARLIB_CTX_RBX
	CFI_SAVED_AT 5, 6, PARLIB_CTX_RBP
	CFI_SAVED_AT 5, 12, PARLIB_CTX_R12
	CFI_SAVED_AT 5, 13, PARLIB_CTX_R13
	CFI_SAVED_AT 5, 14, PARLIB_CTX_R14
	CFI_SAVED_AT 5, 15, PARLIB_CTX_R15
.endm
/* From here on the caller is the context whose registers were just loaded
 * (still in the registers: "same value"), whose return address is at
 * \base + PARLIB_CTX_RIP and whose stack pointer is the current one. */
.macro CFI_CALLER_IS_LOADED base
	.cfi_def_cfa rsp, 0
	CFI_SAVED_AT \base, 16, PARLIB_CTX_RIP
	.cfi_same_value rbx
	.cfi_same_value rbp
	.cfi_same_value r12
	.cfi_same_value r13
	.cfi_same_value r14
	.cfi_same_value r15
.endm
/* After pushq of the loaded return address, just before ret. */
.macro CFI_RETURN_ADDRESS_PUSHED
	.cfi_def_cfa_offset 8
	.cfi_offset rip, -8
.endm

/* SAVE_CALLER_CONTEXT: stores, into the ArchContext at %rdi, the context
 * of our caller as it will be once we return: rip = our return address,
 * rsp = just above it. Clobbers rax and r8 (caller-saved). */
.macro SAVE_CALLER_CONTEXT
	movq	(%rsp), %rax			/* our return address */
	leaq	8(%rsp), %r8			/* rsp once we have returned */
	movq	%r8, PARLIB_CTX_RSP(%rdi)
	movq	%rax, PARLIB_CTX_RIP(%rdi)
	movq	%rbx, PARLIB_CTX_RBX(%rdi)
	movq	%rbp, PARLIB_CTX_RBP(%rdi)
	movq	%r12, PARLIB_CTX_R12(%rdi)
	movq	%r13, PARLIB_CTX_R13(%rdi)
	movq	%r14, PARLIB_CTX_R14(%rdi)
	movq	%r15, PARLIB_CTX_R15(%rdi)
	stmxcsr	PARLIB_CTX_MXCSR(%rdi)
	fnstcw	PARLIB_CTX_FPUCW(%rdi)
.endm

	.text

/* void parlib_ctx_save_and_call(ArchContext *save=rdi, void *new_sp=rsi,
 *                               void (*fn)(void *)=rdx, void *arg=rcx) */
	.globl	parlib_ctx_save_and_call
	.hidden	parlib_ctx_save_and_call
	.type	parlib_ctx_save_and_call, @function
	.p2align 4
parlib_ctx_save_and_call:
	.cfi_startproc
	SAVE_CALLER_CONTEXT
	CFI_CALLER_SAVED_AT_RDI
	movq	%rsi, %rsp			/* onto the new stack (16-aligned) */
	/* The caller's rsp and rip: in the save area while rdi points at it. */
	.cfi_escape 0x0f, 0x03, 0x75, PARLIB_CTX_RSP, 0x06	/* CFA = *(rdi + RSP) */
	CFI_SAVED_AT 5, 16, PARLIB_CTX_RIP
	movq	%rcx, %rdi			/* fn's argument */
	.cfi_def_cfa rsp, 0			/* vcore context: the outermost frame */
	.cfi_undefined rip
	xorl	%ebp, %ebp			/* end of the frame chain */
	callq	*%rdx				/* fn sees rsp = 8 mod 16 */
	ud2					/* fn must not return */
	.cfi_endproc
	.size	parlib_ctx_save_and_call, .-parlib_ctx_save_and_call

/* void parlib_ctx_restore(const ArchContext *ctx=rdi)  -- never returns */
	.globl	parlib_ctx_restore
	.hidden	parlib_ctx_restore
	.type	parlib_ctx_restore, @function
	.p2align 4
parlib_ctx_restore:
	.cfi_startproc
	movq	PARLIB_CTX_RBX(%rdi), %rbx
	movq	PARLIB_CTX_RBP(%rdi), %rbp
	movq	PARLIB_CTX_R12(%rdi), %r12
	movq	PARLIB_CTX_R13(%rdi), %r13
	movq	PARLIB_CTX_R14(%rdi), %r14
	movq	PARLIB_CTX_R15(%rdi), %r15
	ldmxcsr	PARLIB_CTX_MXCSR(%rdi)
	fldcw	PARLIB_CTX_FPUCW(%rdi)
	movq	PARLIB_CTX_RSP(%rdi), %rsp
	CFI_CALLER_IS_LOADED 5
	/* "Return" from the save with a real ret, not an indirect jump: the
	 * call into the switch pushed a return-stack-buffer entry, and only a
	 * ret pops it. A jump would leave it there, and every later ret of
	 * this thread (and the next) would be predicted one frame off. */
	pushq	PARLIB_CTX_RIP(%rdi)
	CFI_RETURN_ADDRESS_PUSHED
	ret
	.cfi_endproc
	.size	parlib_ctx_restore, .-parlib_ctx_restore

/* void parlib_ctx_swap(ArchContext *save=rdi, const ArchContext *load=rsi) */
	.globl	parlib_ctx_swap
	.hidden	parlib_ctx_swap
	.type	parlib_ctx_swap, @function
	.p2align 4
parlib_ctx_swap:
	.cfi_startproc
	SAVE_CALLER_CONTEXT
	CFI_CALLER_SAVED_AT_RDI
	/* The control registers usually match (threads rarely change rounding
	 * modes), and loading them costs far more than comparing. */
	movl	PARLIB_CTX_MXCSR(%rdi), %eax
	cmpl	PARLIB_CTX_MXCSR(%rsi), %eax
	je	1f
	ldmxcsr	PARLIB_CTX_MXCSR(%rsi)
1:	movzwl	PARLIB_CTX_FPUCW(%rdi), %eax
	cmpw	PARLIB_CTX_FPUCW(%rsi), %ax
	je	2f
	fldcw	PARLIB_CTX_FPUCW(%rsi)
2:	movq	PARLIB_CTX_RBX(%rsi), %rbx
	movq	PARLIB_CTX_RBP(%rsi), %rbp
	movq	PARLIB_CTX_R12(%rsi), %r12
	movq	PARLIB_CTX_R13(%rsi), %r13
	movq	PARLIB_CTX_R14(%rsi), %r14
	movq	PARLIB_CTX_R15(%rsi), %r15
	movq	PARLIB_CTX_RSP(%rsi), %rsp
	CFI_CALLER_IS_LOADED 4
	pushq	PARLIB_CTX_RIP(%rsi)		/* ret: see parlib_ctx_restore */
	CFI_RETURN_ADDRESS_PUSHED
	ret
	.cfi_endproc
	.size	parlib_ctx_swap, .-parlib_ctx_swap

/* void parlib_call_on_stack(void *new_sp=rdi, void (*fn)(void *)=rsi,
 *                           void *arg=rdx)  -- never returns */
	.globl	parlib_call_on_stack
	.hidden	parlib_call_on_stack
	.type	parlib_call_on_stack, @function
	.p2align 4
parlib_call_on_stack:
	.cfi_startproc
	movq	%rdi, %rsp
	.cfi_undefined rip			/* a fresh stack: the outermost frame */
	movq	%rdx, %rdi
	xorl	%ebp, %ebp
	callq	*%rsi
	ud2
	.cfi_endproc
	.size	parlib_call_on_stack, .-parlib_call_on_stack

/* parlib_ctx_start: the first instruction of every fresh context. make_context
 * leaves the entry in rbx, its argument in r12 and rsp 16-aligned, so the
 * call below gives the entry the alignment of an ordinary call. There is no
 * caller: the return address is marked undefined so that unwinders and
 * debuggers stop here. */
	.globl	parlib_ctx_start
	.hidden	parlib_ctx_start
	.type	parlib_ctx_start, @function
	.p2align 4
parlib_ctx_start:
	.cfi_startproc
	.cfi_undefined rip
	movq	%r12, %rdi
	xorl	%ebp, %ebp
	callq	*%rbx
	movq	%r12, %rdi
	callq	parlib_ctx_entry_returned	/* reports and aborts */
	ud2
	.cfi_endproc
	.size	parlib_ctx_start, .-parlib_ctx_start

	.section .note.GNU-stack,"",@progbits
