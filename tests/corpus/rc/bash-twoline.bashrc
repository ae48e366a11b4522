# A two-line prompt in the style of parrot/kali themes.
PS1='┌─[\u@\h]─[\w]\n└──╼ \$ '
HISTFILE=/dev/null
