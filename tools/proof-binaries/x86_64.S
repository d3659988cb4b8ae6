# Proof binary for x86_64: write(1, "x86_64\n", 7); exit(0).
# Linux x86-64 syscall table: write = 1, exit = 60; number in rax, arguments in rdi, rsi, rdx.
	.text
	.globl	_start
_start:
	mov	$1, %eax		# write
	mov	$1, %edi		# fd: stdout
	lea	msg(%rip), %rsi
	mov	$len, %edx
	syscall
	mov	$60, %eax		# exit
	xor	%edi, %edi		# status
	syscall
msg:	.ascii	"x86_64\n"
	.set	len, . - msg

	.section .note.GNU-stack, "", @progbits
