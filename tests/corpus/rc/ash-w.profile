PS1='\w kt$ '
