// Proof binary for aarch64: write(1, "aarch64\n", 8); exit(0).
// Linux arm64 generic syscall table: write = 64, exit = 93; number in x8.
	.text
	.globl	_start
_start:
	mov	x0, #1			// fd: stdout
	adr	x1, msg
	mov	x2, #len
	mov	x8, #64			// write
	svc	#0
	mov	x0, #0			// status
	mov	x8, #93			// exit
	svc	#0
msg:	.ascii	"aarch64\n"
	.set	len, . - msg

	.section .note.GNU-stack, "", %progbits
