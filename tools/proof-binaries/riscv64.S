# Proof binary for riscv64: write(1, "riscv64\n", 8); exit(0).
# Generic syscall table: write = 64, exit = 93; number in a7, "ecall".
	.text
msg:	.ascii	"riscv64\n"		# first, so "li a2, len" sees a known constant
	.set	len, . - msg
	.p2align 2
	.globl	_start
_start:
	li	a0, 1			# fd: stdout
	lla	a1, msg
	li	a2, len
	li	a7, 64			# write
	ecall
	li	a0, 0			# status
	li	a7, 93			# exit
	ecall

	.section .note.GNU-stack, "", @progbits
