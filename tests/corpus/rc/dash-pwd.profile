PS1='$PWD kt$ '
