# Proof binary for ppc64le: write(1, "ppc64le\n", 8); exit(0).
# Syscall number in r0, arguments from r3, "sc"; write = 4, exit = 1.
# ELFv2 marks e_entry as code; under ELFv1 loaders would read it as a function descriptor.
	.abiversion 2
	.text
	.globl	_start
_start:
	bl	1f			# the link register now holds the address of msg
msg:	.ascii	"ppc64le\n"
	.set	len, . - msg
	.p2align 2
1:	mflr	4			# buf
	li	3, 1			# fd: stdout
	li	5, len
	li	0, 4			# write
	sc
	li	3, 0			# status
	li	0, 1			# exit
	sc

	.section .note.GNU-stack, "", @progbits
