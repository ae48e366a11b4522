# Debian's coloured prompt with a git branch, as __git_ps1 shows it.
__git_ps1() { printf ' (%s)' main; }
PS1='\[\e[01;32m\]\u@\h\[\e[00m\]:\[\e[01;34m\]\w\[\e[00m\]$(__git_ps1)\$ '
HISTFILE=/dev/null
