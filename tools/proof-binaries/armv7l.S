@ Proof binary for 32-bit ARM (EABI): write(1, "armv7l\n", 7); exit(0).
@ EABI syscalls: number in r7, svc #0; write = 4, exit = 1.
	.syntax	unified
	.arch	armv7-a
	.arm
	.text
	.globl	_start
_start:
	mov	r0, #1			@ fd: stdout
	adr	r1, msg
	mov	r2, #len
	mov	r7, #4			@ write
	svc	#0
	mov	r0, #0			@ status
	mov	r7, #1			@ exit
	svc	#0
msg:	.ascii	"armv7l\n"
	.set	len, . - msg

	.section .note.GNU-stack, "", %progbits
