# The real data sets in the TAP tests: where they are, reading .fvecs and
# .ivecs files, and loading sift5k into a space through COPY, with its
# queries and ground truth in a table beside it.
package EngramData;

use strict;
use warnings;
use FindBin;
use IPC::Run;
use Exporter 'import';

our @EXPORT = qw(data_dir read_vecs array_text psql_file copy_base load_queries);

# ../shared/data beside the repository, or wherever ENGRAM_DATA points.
sub data_dir { return $ENV{ENGRAM_DATA} // "$FindBin::Bin/../../../shared/data"; }

# Reads an .fvecs (float32, kind 'f') or .ivecs (int32) file: per row an
# int32 count, then that many values. Calls $each->($index, \@values) per
# row; returns the number of rows.
sub read_vecs
{
	my ($file, $kind, $each) = @_;
	open my $fh, '<:raw', $file or die "cannot read $file: $!";
	my $rows = 0;
	while (read($fh, my $head, 4) == 4)
	{
		my $dim = unpack('l<', $head);
		read($fh, my $body, 4 * $dim) == 4 * $dim or die "$file: truncated row $rows";
		$each->($rows++, [ unpack(($kind eq 'f' ? 'f<' : 'l<') . $dim, $body) ]);
	}
	close $fh;
	return $rows;
}

# A float32 as text that reads back as the same float32.
sub array_text { return '{' . join(',', map { sprintf('%.9g', $_) } @{ $_[0] }) . '}'; }

# Runs a psql script file in one session, stopping at the first error; dies
# with psql's stderr if it fails.
sub psql_file
{
	my ($node, $db, $file) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'psql', '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr($db), '-f', $file ],
		'>', \$out, '2>', \$err)
	  or die "psql -f $file failed: $err";
	return $out;
}

# COPYs the base vectors of data set $name (e.g. sift5k) into space $space_id
# in base order, with content = the base index; returns the number of rows.
sub copy_base
{
	my ($node, $db, $name, $space_id) = @_;
	my $file = $node->basedir . "/$name.copy.sql";
	open my $fh, '>', $file or die "cannot write $file: $!";
	print $fh "COPY engram.observations (space_id, embedding, content) FROM STDIN;\n";
	my $rows = read_vecs(data_dir() . "/$name/${name}_base.fvecs", 'f',
		sub { my ($i, $v) = @_; print $fh "$space_id\t" . array_text($v) . "\t$i\n"; });
	print $fh "\\.\n";
	close $fh;
	psql_file($node, $db, $file);
	unlink $file;
	return $rows;
}

# Creates table $table (qid int, cue real[], truth int[]: the base indexes of
# the 10 nearest) from data set $name's queries; returns how many there are.
sub load_queries
{
	my ($node, $db, $name, $table) = @_;
	my $dir = data_dir() . "/$name";
	my (@cues, @truth);
	read_vecs("$dir/${name}_query.fvecs", 'f', sub { $cues[ $_[0] ] = array_text($_[1]); });
	read_vecs("$dir/${name}_groundtruth.ivecs", 'i', sub { $truth[ $_[0] ] = '{' . join(',', @{ $_[1] }[ 0 .. 9 ]) . '}'; });
	die "$name: queries and ground truth differ in length" unless @cues == @truth;
	my $file = $node->basedir . "/$table.sql";
	open my $fh, '>', $file or die "cannot write $file: $!";
	print $fh "CREATE TABLE $table (qid int PRIMARY KEY, cue real[], truth int[]);\nCOPY $table FROM STDIN;\n";
	print $fh "$_\t$cues[$_]\t$truth[$_]\n" for 0 .. $#cues;
	print $fh "\\.\n";
	close $fh;
	psql_file($node, $db, $file);
	unlink $file;
	return scalar @cues;
}

1;
